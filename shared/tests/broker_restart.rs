//! Broker restarts: what was confirmed survives, and clients reconnect and carry on.
//!
//! This file holds the only test that stops the shared broker node, so it is its own test
//! binary (cargo runs test binaries one after another).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, Outgoing, QueueRole, Role, Transport};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::testkit::{BrokerEnv, unique_namespace, wait_until, within};
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::event::{Event, JobRemoved};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope, SequenceSource};

const WAIT: Duration = Duration::from_secs(20);
const RESTART_WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_survive_a_broker_restart_without_losing_confirmed_messages() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("restart");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let manager =
        AmqpBroker::start(env.tls_config(&namespace), Role::Manager, shutdown.clone()).unwrap();
    manager.wait_connected(WAIT).await.unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let worker = AmqpBroker::start(
        env.tls_config(&namespace),
        Role::Worker(worker_id.clone()),
        shutdown.clone(),
    )
    .unwrap();
    worker.wait_connected(WAIT).await.unwrap();
    let seq = SequenceSource::new();
    let event = |idx: usize| {
        EventEnvelope::new(
            worker_id.clone(),
            seq.next(),
            Event::JobRemoved(JobRemoved {
                mirror: MirrorName::new(format!("m{idx}")).unwrap(),
            }),
        )
    };

    // Confirmed before the restart, consumed after it.
    let mut expected = BTreeSet::new();
    for idx in 0..300 {
        let sent = event(idx);
        worker.publish(Outgoing::event(&sent)).await.unwrap();
        expected.insert(sent.seq);
    }

    // A subscription made before the restart must resume by itself afterwards.
    let mut commands = worker
        .subscribe(QueueRole::Worker(worker_id.clone()), 4)
        .await
        .unwrap();

    let stopper = env.clone();
    tokio::task::spawn_blocking(move || stopper.stop_broker())
        .await
        .unwrap();
    wait_until(WAIT, "both clients to notice the broker is gone", || {
        !manager.is_connected() && !worker.is_connected()
    })
    .await;

    // Published while the broker is down: waits, then is confirmed after the reconnection.
    let during = event(300);
    expected.insert(during.seq);
    let pending = {
        let worker = worker.clone();
        let message = Outgoing::event(&during);
        tokio::spawn(async move { worker.publish(message).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pending.is_finished(),
        "nothing can be confirmed while the broker is down"
    );

    let starter = env.clone();
    tokio::task::spawn_blocking(move || starter.start_broker())
        .await
        .unwrap();
    within(
        RESTART_WAIT,
        "the publish made while the broker was down",
        pending,
    )
    .await
    .unwrap()
    .unwrap();
    manager.wait_connected(WAIT).await.unwrap();

    // A subscription resumes on the new connection; everything confirmed arrives.
    let mut events = manager.subscribe(QueueRole::Manager, 1000).await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < expected.len() {
        let incoming = within(
            WAIT,
            "the events confirmed around the restart",
            events.next(),
        )
        .await
        .unwrap();
        got.insert(EventEnvelope::decode(&incoming.payload).unwrap().seq);
        incoming.ack().await.unwrap();
    }
    assert_eq!(got, expected);

    // And traffic keeps flowing afterwards.
    let after = event(301);
    worker.publish(Outgoing::event(&after)).await.unwrap();
    let incoming = within(WAIT, "an event after the restart", events.next())
        .await
        .unwrap();
    assert_eq!(EventEnvelope::decode(&incoming.payload).unwrap(), after);
    incoming.ack().await.unwrap();

    let command = CommandEnvelope::new(worker_id.clone(), Command::Reload(Default::default()));
    manager
        .publish(Outgoing::command(&command, Duration::from_secs(30)))
        .await
        .unwrap();
    let incoming = within(
        WAIT,
        "a command on the subscription made before the restart",
        commands.next(),
    )
    .await
    .unwrap();
    assert_eq!(CommandEnvelope::decode(&incoming.payload).unwrap(), command);
    incoming.ack().await.unwrap();
}
