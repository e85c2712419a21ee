//! The broker layer against the private RabbitMQ node, over amqps.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{
    AmqpBroker, BrokerError, Outgoing, QueueRole, QueueType, Role, Route, Transport, ack_batch,
};
use tunasync_shared::error_chain;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::testkit::{BrokerEnv, TlsServer, unique_namespace, within};
use tunasync_shared::wire::command::{Command, JobTarget, StartJob};
use tunasync_shared::wire::event::{Event, JobRemoved};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope, SequenceSource};

const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    manager: AmqpBroker,
    worker: AmqpBroker,
    worker_id: WorkerId,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A manager-side and a worker-side client on a fresh namespace, both connected over TLS.
async fn cluster(label: &str) -> Cluster {
    let env = BrokerEnv::get();
    let namespace = unique_namespace(label);
    let shutdown = CancellationToken::new();
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
    Cluster {
        manager,
        worker,
        worker_id,
        shutdown,
    }
}

fn removed_event(worker: &WorkerId, seq: &SequenceSource, mirror: &str) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::JobRemoved(JobRemoved {
            mirror: MirrorName::new(mirror).unwrap(),
        }),
    )
}

/// Publish → consume, both ways: an event reaches the manager's queue, a command the worker's.
#[tokio::test]
async fn publish_and_consume_round_trip() {
    let cluster = cluster("roundtrip").await;
    let seq = SequenceSource::new();
    let mut events = cluster
        .manager
        .subscribe(QueueRole::Manager, 10)
        .await
        .unwrap();
    let sent = removed_event(&cluster.worker_id, &seq, "debian");
    cluster
        .worker
        .publish(Outgoing::event(&sent))
        .await
        .unwrap();
    let got = within(WAIT, "the event", events.next()).await.unwrap();
    assert_eq!(EventEnvelope::decode(&got.payload).unwrap(), sent);
    assert_eq!(got.kind.as_deref(), Some("job-removed"));
    assert_eq!(got.user_id.as_deref(), Some("guest"));
    assert_eq!(got.routing_key, "w1.job-removed");
    assert_eq!(got.message_id, Some(sent.header.id.to_string()));
    assert!(!got.redelivered);
    got.ack().await.unwrap();

    let mut commands = cluster
        .worker
        .subscribe(QueueRole::Worker(cluster.worker_id.clone()), 4)
        .await
        .unwrap();
    let command = CommandEnvelope::new(
        cluster.worker_id.clone(),
        Command::Start(StartJob {
            mirror: MirrorName::new("debian").unwrap(),
            args: vec![],
            force: true,
        }),
    );
    cluster
        .manager
        .publish(Outgoing::command(&command, Duration::from_secs(30)))
        .await
        .unwrap();
    let got = within(WAIT, "the command", commands.next()).await.unwrap();
    assert_eq!(CommandEnvelope::decode(&got.payload).unwrap(), command);
    got.ack().await.unwrap();
}

/// A confirmed publish means the broker routed and stored it; where it cannot, publish fails.
#[tokio::test]
async fn confirms_reflect_what_the_broker_did() {
    let cluster = cluster("confirms").await;
    // Many publishes in flight at once, all confirmed, all delivered, in order.
    let seq = SequenceSource::new();
    let sent: Vec<EventEnvelope> = (0..200)
        .map(|idx| removed_event(&cluster.worker_id, &seq, &format!("m{idx}")))
        .collect();
    let publishes: Vec<_> = sent
        .iter()
        .map(|event| {
            let worker = cluster.worker.clone();
            let message = Outgoing::event(event);
            tokio::spawn(async move { worker.publish(message).await })
        })
        .collect();
    for publish in publishes {
        within(WAIT, "the confirms", publish)
            .await
            .unwrap()
            .unwrap();
    }
    let mut events = cluster
        .manager
        .subscribe(QueueRole::Manager, 500)
        .await
        .unwrap();
    let mut batch = Vec::new();
    while batch.len() < sent.len() {
        batch.push(
            within(WAIT, "the confirmed events", events.next())
                .await
                .unwrap(),
        );
    }
    let mut got: Vec<u64> = batch
        .iter()
        .map(|incoming| EventEnvelope::decode(&incoming.payload).unwrap().seq)
        .collect();
    got.sort_unstable();
    assert_eq!(got, sent.iter().map(|event| event.seq).collect::<Vec<_>>());
    ack_batch(&batch).await.unwrap();

    // A command for a worker that has no queue is not stored anywhere: publish says so.
    let nobody = WorkerId::new("nobody").unwrap();
    let command = CommandEnvelope::new(
        nobody,
        Command::Stop(JobTarget {
            mirror: MirrorName::new("debian").unwrap(),
            args: vec![],
        }),
    );
    let err = cluster
        .manager
        .publish(Outgoing::command(&command, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unroutable), "{err:?}");
}

/// A requeued message comes back, marked redelivered.
#[tokio::test]
async fn requeued_messages_are_redelivered() {
    let cluster = cluster("requeue").await;
    let seq = SequenceSource::new();
    let mut events = cluster
        .manager
        .subscribe(QueueRole::Manager, 1)
        .await
        .unwrap();
    let sent = removed_event(&cluster.worker_id, &seq, "debian");
    cluster
        .worker
        .publish(Outgoing::event(&sent))
        .await
        .unwrap();
    let first = within(WAIT, "the first delivery", events.next())
        .await
        .unwrap();
    assert!(!first.redelivered);
    first.requeue().await.unwrap();
    let second = within(WAIT, "the redelivery", events.next()).await.unwrap();
    assert!(second.redelivered);
    assert_eq!(second.payload, first.payload);
    second.ack().await.unwrap();
}

/// Garbage is dead-lettered and the consumer goes on with the next message.
#[tokio::test]
async fn garbage_goes_to_the_dead_letter_queue() {
    let cluster = cluster("dead").await;
    let seq = SequenceSource::new();
    let mut dead = cluster
        .manager
        .subscribe(QueueRole::Dead, 10)
        .await
        .unwrap();
    let mut events = cluster
        .manager
        .subscribe(QueueRole::Manager, 10)
        .await
        .unwrap();
    let garbage = Outgoing {
        route: Route::Event {
            routing_key: "w1.status".into(),
        },
        kind: "status",
        message_id: uuid::Uuid::new_v4(),
        payload: b"{\"v\":1,\"kind\":\"status\",".to_vec(),
        expiration: None,
    };
    cluster.worker.publish(garbage.clone()).await.unwrap();
    let good = removed_event(&cluster.worker_id, &seq, "after-garbage");
    cluster
        .worker
        .publish(Outgoing::event(&good))
        .await
        .unwrap();

    // The consumer decodes, dead-letters what does not decode, and carries on.
    let mut decoded = Vec::new();
    while decoded.is_empty() {
        let incoming = within(WAIT, "the events", events.next()).await.unwrap();
        match EventEnvelope::decode(&incoming.payload) {
            Ok(event) => {
                incoming.ack().await.unwrap();
                decoded.push(event);
            }
            Err(err) => {
                assert!(error_chain(&err).contains("not a JSON envelope"), "{err}");
                incoming.dead_letter().await.unwrap();
            }
        }
    }
    assert_eq!(decoded, [good]);
    let lost = within(WAIT, "the dead-lettered message", dead.next())
        .await
        .unwrap();
    assert_eq!(lost.payload, garbage.payload);
    assert_eq!(lost.kind.as_deref(), Some("status"));
    lost.ack().await.unwrap();
}

/// A command that waits in a queue longer than its expiry is dead-lettered, never delivered.
#[tokio::test]
async fn expired_commands_are_not_delivered() {
    let cluster = cluster("expiry").await;
    let mut dead = cluster
        .manager
        .subscribe(QueueRole::Dead, 10)
        .await
        .unwrap();
    let stale = CommandEnvelope::new(cluster.worker_id.clone(), Command::Ping(Default::default()));
    cluster
        .manager
        .publish(Outgoing::command(&stale, Duration::from_millis(50)))
        .await
        .unwrap();
    let expired = within(
        WAIT,
        "the expired command in the dead-letter queue",
        dead.next(),
    )
    .await
    .unwrap();
    assert_eq!(CommandEnvelope::decode(&expired.payload).unwrap(), stale);
    expired.ack().await.unwrap();

    let fresh = CommandEnvelope::new(cluster.worker_id.clone(), Command::Ping(Default::default()));
    cluster
        .manager
        .publish(Outgoing::command(&fresh, Duration::from_secs(30)))
        .await
        .unwrap();
    let mut commands = cluster
        .worker
        .subscribe(QueueRole::Worker(cluster.worker_id.clone()), 4)
        .await
        .unwrap();
    let got = within(WAIT, "the fresh command", commands.next())
        .await
        .unwrap();
    assert_eq!(
        CommandEnvelope::decode(&got.payload).unwrap(),
        fresh,
        "the stale one never arrives"
    );
    got.ack().await.unwrap();
}

/// Only the configured CA is trusted: a broker certificate from it is refused under another.
#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let env = BrokerEnv::get();
    let mut config = env.tls_config(&unique_namespace("otherca"));
    config.ca_cert = Some(env.other_ca_cert.clone());
    let err = within(
        WAIT,
        "the refused connection",
        AmqpBroker::probe(config, Role::Manager),
    )
    .await
    .unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("certificate"), "{text}");

    let mut missing = env.tls_config("x");
    missing.ca_cert = Some("/nonexistent/ca.crt".into());
    let err = AmqpBroker::probe(missing, Role::Manager).await.unwrap_err();
    assert!(
        error_chain(&err).contains("cannot read ca_cert /nonexistent/ca.crt"),
        "{err}"
    );

    // The same settings with the right CA work.
    let good = env.tls_config(&unique_namespace("rightca"));
    within(
        WAIT,
        "the good connection",
        AmqpBroker::probe(good, Role::Manager),
    )
    .await
    .unwrap();
}

/// A peer on the broker's address whose certificate (from the site's CA) has expired, or
/// names another host, is refused before anything is sent.
#[tokio::test]
async fn an_expired_or_misnamed_broker_certificate_is_refused() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], i32, &str); 2] = [
        ("expired", &["localhost", "127.0.0.1"], -1, "expired"),
        ("misnamed", &["elsewhere.example"], 30, "notvalidforname"),
    ];
    for (label, hosts, days, refusal) in cases {
        let dir = temp.path().join(label);
        std::fs::create_dir(&dir).unwrap();
        let (cert, key) = env.server_identity(&dir, hosts, days);
        let peer = TlsServer::start(&cert, &key);
        let mut config = env.tls_config(&unique_namespace(label));
        config.urls = vec![format!("amqps://guest:guest@localhost:{}/%2f", peer.port)];
        let err = within(
            WAIT,
            "the refused connection",
            AmqpBroker::probe(config, Role::Manager),
        )
        .await
        .unwrap_err();
        let text = error_chain(&err);
        assert!(
            text.to_lowercase().replace(' ', "").contains(refusal),
            "{label}: {text}"
        );
    }
}

/// A worker logs in with its client certificate (EXTERNAL), in hardened mode: its broker user
/// may use only its own queue and the events exchange.
#[tokio::test]
async fn client_certificate_login_in_hardened_mode() {
    let env = BrokerEnv::get();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    // The node's definitions give `tls-worker` the hardened permissions on namespace "hard".
    let manager =
        AmqpBroker::start(env.tls_config("hard"), Role::Manager, shutdown.clone()).unwrap();
    manager.wait_connected(WAIT).await.unwrap();
    let worker_id = WorkerId::new(env.client_user.clone()).unwrap();
    let worker = AmqpBroker::start(
        env.external_config("hard"),
        Role::Worker(worker_id.clone()),
        shutdown.clone(),
    )
    .unwrap();
    worker.wait_connected(WAIT).await.unwrap();

    let mut events = manager.subscribe(QueueRole::Manager, 10).await.unwrap();
    let sent = removed_event(&worker_id, &SequenceSource::new(), "debian");
    worker.publish(Outgoing::event(&sent)).await.unwrap();
    let got = within(WAIT, "the worker's event", events.next())
        .await
        .unwrap();
    assert_eq!(
        got.user_id.as_deref(),
        Some("tls-worker"),
        "the broker vouches for the sender"
    );
    assert_eq!(EventEnvelope::decode(&got.payload).unwrap(), sent);
    got.ack().await.unwrap();

    let mut commands = worker
        .subscribe(QueueRole::Worker(worker_id.clone()), 4)
        .await
        .unwrap();
    let command = CommandEnvelope::new(worker_id.clone(), Command::Reload(Default::default()));
    manager
        .publish(Outgoing::command(&command, Duration::from_secs(30)))
        .await
        .unwrap();
    let got = within(WAIT, "the command", commands.next()).await.unwrap();
    assert_eq!(CommandEnvelope::decode(&got.payload).unwrap(), command);
    got.ack().await.unwrap();

    // The worker's user may not send commands (to itself or anyone).
    let forged = CommandEnvelope::new(worker_id.clone(), Command::Reload(Default::default()));
    let err = within(
        WAIT,
        "the refused publish",
        worker.publish(Outgoing::command(&forged, Duration::from_secs(5))),
    )
    .await
    .unwrap_err();
    assert!(
        error_chain(&err).contains("ACCESS_REFUSED") || error_chain(&err).contains("access"),
        "{}",
        error_chain(&err)
    );
}

/// A hardened worker's broker user cannot read another worker's queue, nor the queue of a
/// pool it is not in: the broker refuses the consumer (and says so in its log), and what
/// waits in the queue stays there for its owner.
#[tokio::test]
async fn a_hardened_worker_cannot_read_other_queues() {
    let env = BrokerEnv::get();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let manager =
        AmqpBroker::start(env.tls_config("hard"), Role::Manager, shutdown.clone()).unwrap();
    manager.wait_connected(WAIT).await.unwrap();
    // Another worker of namespace "hard" (the administrator's login declares its queue).
    let other_id = WorkerId::new(unique_namespace("victim")).unwrap();
    let other = AmqpBroker::start(
        env.tls_config("hard"),
        Role::Worker(other_id.clone()),
        shutdown.clone(),
    )
    .unwrap();
    other.wait_connected(WAIT).await.unwrap();
    let pool = tunasync_shared::names::PoolName::new(unique_namespace("closed")).unwrap();
    manager.declare_pool(&pool).await.unwrap();
    let command = CommandEnvelope::new(other_id.clone(), Command::Reload(Default::default()));
    manager
        .publish(Outgoing::command(&command, Duration::from_secs(60)))
        .await
        .unwrap();

    let hardened = AmqpBroker::start(
        env.external_config("hard"),
        Role::Worker(WorkerId::new(env.client_user.clone()).unwrap()),
        shutdown.clone(),
    )
    .unwrap();
    hardened.wait_connected(WAIT).await.unwrap();
    let mut stolen = hardened
        .subscribe(QueueRole::Worker(other_id.clone()), 4)
        .await
        .unwrap();
    let mut pooled = hardened
        .subscribe(QueueRole::Pool(pool.clone()), 4)
        .await
        .unwrap();
    for queue in [
        format!("hard.worker.{other_id}"),
        format!("hard.pool.{pool}"),
    ] {
        let refusal =
            format!("access to queue '{queue}' in vhost '/' refused for user 'tls-worker'");
        tunasync_shared::testkit::wait_until(WAIT, &refusal, || {
            env.broker_log().contains(&refusal)
        })
        .await;
    }
    assert!(
        stolen.try_next().is_none(),
        "nothing read from another worker's queue"
    );
    assert!(
        pooled.try_next().is_none(),
        "nothing read from a pool it is not in"
    );
    let mut own = other
        .subscribe(QueueRole::Worker(other_id.clone()), 4)
        .await
        .unwrap();
    let got = within(WAIT, "the command, for its owner", own.next())
        .await
        .unwrap();
    assert_eq!(CommandEnvelope::decode(&got.payload).unwrap(), command);
    got.ack().await.unwrap();
}

/// Quorum queues, for a clustered broker, carry the same traffic.
#[tokio::test]
async fn quorum_queues_work() {
    let env = BrokerEnv::get();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let mut config = env.tls_config(&unique_namespace("quorum"));
    config.queue_type = QueueType::Quorum;
    let manager = AmqpBroker::start(config.clone(), Role::Manager, shutdown.clone()).unwrap();
    manager.wait_connected(WAIT).await.unwrap();
    let worker_id = WorkerId::new("q1").unwrap();
    let worker =
        AmqpBroker::start(config, Role::Worker(worker_id.clone()), shutdown.clone()).unwrap();
    worker.wait_connected(WAIT).await.unwrap();
    let mut events = manager.subscribe(QueueRole::Manager, 10).await.unwrap();
    let sent = removed_event(&worker_id, &SequenceSource::new(), "debian");
    worker.publish(Outgoing::event(&sent)).await.unwrap();
    let got = within(WAIT, "the event", events.next()).await.unwrap();
    assert_eq!(EventEnvelope::decode(&got.payload).unwrap(), sent);
    got.ack().await.unwrap();
}

/// A pool's queue, declared by the manager, takes runs published to the pool; whichever
/// member reads the queue gets each run once. A pool nobody declared routes nowhere.
#[tokio::test]
async fn pool_queues_hold_runs_for_their_members() {
    let cluster = cluster("pool").await;
    let pool = tunasync_shared::names::PoolName::new("shared").unwrap();
    cluster.manager.declare_pool(&pool).await.unwrap();
    cluster
        .manager
        .declare_pool(&pool)
        .await
        .expect("declaring twice is harmless");
    let run = |n: u8| Outgoing {
        route: Route::Pool { pool: pool.clone() },
        kind: "pool-run",
        message_id: uuid::Uuid::new_v4(),
        payload: vec![n],
        expiration: None,
    };
    for n in 0..4 {
        cluster.manager.publish(run(n)).await.unwrap();
    }
    let mut first = cluster
        .worker
        .subscribe(QueueRole::Pool(pool.clone()), 1)
        .await
        .unwrap();
    let mut second = cluster
        .worker
        .subscribe(QueueRole::Pool(pool.clone()), 1)
        .await
        .unwrap();
    let mut taken = Vec::new();
    while taken.len() < 4 {
        let incoming = tokio::select! {
            incoming = first.next() => incoming,
            incoming = second.next() => incoming,
            () = tokio::time::sleep(WAIT) => panic!("timed out waiting for the pool's runs"),
        }
        .unwrap();
        incoming.ack().await.unwrap();
        taken.push(incoming.payload[0]);
    }
    taken.sort_unstable();
    assert_eq!(taken, [0, 1, 2, 3], "each run taken once");

    let nobody = Outgoing {
        route: Route::Pool {
            pool: tunasync_shared::names::PoolName::new("undeclared").unwrap(),
        },
        ..run(9)
    };
    let err = cluster.manager.publish(nobody).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unroutable), "{err}");
}

/// The misuse matrix's broker rows: plaintext AMQP against the TLS port gets no session,
/// and says so instead of hanging.
#[tokio::test]
async fn plaintext_amqp_against_the_tls_port_is_refused() {
    let env = BrokerEnv::get();
    let mut config = env.tls_config(&unique_namespace("plain"));
    config.urls = vec![format!(
        "amqp://guest:guest@localhost:{}/%2f",
        env.amqps_port
    )];
    config.ca_cert = None;
    let err = within(
        WAIT,
        "the refused connection",
        AmqpBroker::probe(config, Role::Manager),
    )
    .await
    .unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.contains("cannot connect to amqp://guest:***@localhost"),
        "{text}"
    );
}
