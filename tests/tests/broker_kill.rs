//! The fault suite (issue 14): the whole broker node SIGKILLed while workers publish, then
//! started again. Every event a worker saw confirmed reaches the store (each is a run of
//! its own: the run ids in the jobs' histories are checked one by one), and the manager and
//! the publishers reconnect by themselves. Its own test binary: it stops the node the
//! other tests share.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tunasync_e2e::events::successful_run;
use tunasync_e2e::site::{self, Files};
use tunasync_e2e::wait_for;
use tunasync_shared::broker::{AmqpBroker, Outgoing, Role, Transport};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::testkit::BrokerEnv;
use tunasync_shared::wire::SequenceSource;

const WORKERS: usize = 3;
const EVENTS_PER_WORKER: usize = 300;
const WAIT: Duration = Duration::from_secs(180);

#[test]
fn a_killed_broker_loses_no_confirmed_event() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "fault-broker",
    };
    let (_manager, port, _ctl) = files.start_manager("\n[history]\nruns_per_job = 1000\n");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = CancellationToken::new();
    // Run ids the broker confirmed, and all sent, per worker.
    let confirmed: Arc<Mutex<BTreeSet<(String, String)>>> = Arc::default();
    let sent: Arc<Mutex<usize>> = Arc::default();
    let publishers: Vec<_> = (0..WORKERS)
        .map(|idx| {
            let config = env.tls_config("fault-broker");
            let (shutdown, confirmed, sent) = (shutdown.clone(), confirmed.clone(), sent.clone());
            runtime.spawn(async move {
                let worker = WorkerId::new(format!("w{idx}")).unwrap();
                let mirror = MirrorName::new(format!("m{idx}")).unwrap();
                let broker =
                    AmqpBroker::start(config, Role::Worker(worker.clone()), shutdown).unwrap();
                broker
                    .wait_connected(Duration::from_secs(30))
                    .await
                    .unwrap();
                let seq = SequenceSource::new();
                for _ in 0..EVENTS_PER_WORKER {
                    let run_id = uuid::Uuid::new_v4();
                    let envelope = successful_run(&worker, &mirror, &seq, run_id, String::new());
                    *sent.lock().unwrap() += 1;
                    // As a worker's outbox does: the same event again until it is confirmed.
                    let deadline = Instant::now() + WAIT;
                    while broker.publish(Outgoing::event(&envelope)).await.is_err() {
                        assert!(Instant::now() < deadline, "never confirmed again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    confirmed
                        .lock()
                        .unwrap()
                        .insert((worker.to_string(), run_id.to_string()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    // Part of the way through, the node dies and comes back.
    wait_for(WAIT, "some events confirmed", || {
        confirmed.lock().unwrap().len() >= 100
    });
    env.kill_broker();
    let confirmed_before = confirmed.lock().unwrap().len();
    env.start_broker();
    runtime.block_on(async {
        for publisher in publishers {
            publisher.await.unwrap();
        }
    });
    shutdown.cancel();

    // Every confirmed run is in its job's history, once.
    let ca = env.ca_cert.clone();
    let stored = || -> BTreeSet<(String, String)> {
        let mut stored = BTreeSet::new();
        for idx in 0..WORKERS {
            let url = format!("https://localhost:{port}/jobs/w{idx}/m{idx}/history");
            let history = site::try_get_json(&url, &ca).unwrap_or_default();
            for run in history.as_array().cloned().unwrap_or_default() {
                if let Some(run_id) = run["run_id"].as_str() {
                    stored.insert((format!("w{idx}"), run_id.to_owned()));
                }
            }
        }
        stored
    };
    let confirmed = confirmed.lock().unwrap().clone();
    wait_for(WAIT, "every confirmed event in the store", || {
        confirmed.is_subset(&stored())
    });
    let stored = stored();
    let sent = *sent.lock().unwrap();
    assert!(stored.len() <= sent, "nothing stored that was not sent");
    assert_eq!(confirmed.len(), WORKERS * EVENTS_PER_WORKER);
    eprintln!(
        "fault broker: {sent} sent, {} confirmed ({confirmed_before} before the kill), {} stored",
        confirmed.len(),
        stored.len()
    );
}
