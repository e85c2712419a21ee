//! A worker SIGKILLed while a job runs under the docker hook leaves its container
//! `tunasync-job-<name>` running (`--rm` never comes: tunasync#213). Started again, the
//! worker removes it before any new run. A private dockerd, started and stopped by PID.

use std::time::Duration;

use tunasync_e2e::docker::{DockerDaemon, IMAGE};
use tunasync_e2e::site::Files;
use tunasync_e2e::{Daemon, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(90);
const CONTAINER: &str = "tunasync-job-boxed";

#[test]
fn a_killed_workers_container_is_removed_when_it_starts_again() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let docker = DockerDaemon::start(&dir.join("docker"));
    let files = Files {
        dir,
        env: &env,
        namespace: "fault-docker",
    };
    let (_manager, _port, ctl) = files.start_manager("");
    let conf = files.worker_conf(
        "w1",
        &files.plain_broker(),
        &format!(
            "[docker]\nenable = true\n\
             [[mirrors]]\nname = \"boxed\"\nprovider = \"command\"\ncommand = \"/bin/sleep 300\"\n\
             docker_image = \"{IMAGE}\"\ndocker_options = [\"--network\", \"none\"]\n"
        ),
    );
    let start_worker = |log: &str| {
        Daemon::start_with_env(
            "w1",
            &["worker", "-c", conf.to_str().unwrap()],
            &dir.join(log),
            &[("DOCKER_HOST", docker.host.as_str())],
        )
    };
    let mut worker = start_worker("w1.log");
    tunasync_e2e::site::wait_status(&ctl, "w1", "boxed", "syncing", WAIT);
    wait_for(WAIT, "the job's container", || {
        !docker.containers(CONTAINER).is_empty()
    });
    let old = docker.containers(CONTAINER);
    worker.kill();
    assert_eq!(
        docker.containers(CONTAINER),
        old,
        "the container outlived its worker (the fault)"
    );

    let worker = start_worker("w1-2.log");
    wait_for(WAIT, "the leftover container removed", || {
        docker.containers(CONTAINER).first() != old.first()
    });
    wait_for(WAIT, "a new run", || {
        worker.log_text().contains("start mirror=boxed")
    });
    let log = worker.log_text();
    let removed = log
        .find("a container left by this worker's previous life")
        .expect("the worker says what it removed");
    let started = log.find("start mirror=boxed").unwrap();
    assert!(removed < started, "removed before any new run:\n{log}");
    // The new run has a container of its own, under the same name.
    wait_for(WAIT, "the new run's container", || {
        docker
            .containers(CONTAINER)
            .first()
            .is_some_and(|id| Some(id) != old.first())
    });
}
