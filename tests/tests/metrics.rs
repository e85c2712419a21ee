//! The metrics as monitoring reads them: Debian's real `prometheus` scrapes a real manager
//! (over HTTPS, trusting the test's CA) and a real worker's health endpoint, and the test
//! reads the series back through Prometheus's query API.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tunasync_e2e::site::{self, Files};
use tunasync_e2e::{Daemon, wait_for};
use tunasync_shared::testkit::{BrokerEnv, RsyncDaemon, make_tree};

const WAIT: Duration = Duration::from_secs(90);

/// `GET url` over plain HTTP (Prometheus's own API on loopback), as JSON.
fn get_plain(url: &str) -> Option<Value> {
    let (_, body) = site::get_plain(url)?;
    serde_json::from_str(&body).ok()
}

/// The value of each series `query` returns, by its `mirror` (or `worker`) label.
fn query(prometheus: &str, query: &str) -> Vec<(String, String)> {
    let url = format!("{prometheus}/api/v1/query?query={query}");
    let Some(answer) = get_plain(&url) else {
        return Vec::new();
    };
    answer["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .map(|one| {
                    let labels = &one["metric"];
                    let name = labels["mirror"]
                        .as_str()
                        .or_else(|| labels["worker"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    (
                        name,
                        one["value"][1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

#[test]
fn prometheus_scrapes_the_manager_and_a_worker() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "metrics",
    };
    let (_manager, port, ctl) = files.start_manager("");
    let upstream = dir.join("upstream");
    make_tree(&upstream);
    let rsyncd = RsyncDaemon::start(&upstream);
    let health = site::free_port();
    let mirrors = format!(
        "[health]\naddr = \"127.0.0.1:{health}\"\n\
         [[mirrors]]\nname = \"tree\"\nupstream = \"{upstream}\"\n\
         [[mirrors]]\nname = \"good\"\nprovider = \"command\"\ncommand = \"/bin/sh -c 'echo Total size is 1.5G'\"\n\
         size_pattern = \"Total size is ([0-9\\\\.]+[KMGTP]?)\"\n\
         [[mirrors]]\nname = \"bad\"\nprovider = \"command\"\ncommand = \"/bin/false\"\nretry = 1\n",
        upstream = rsyncd.url()
    );
    let conf = files.worker_conf("w1", &files.plain_broker(), &mirrors);
    let _worker = Daemon::start(
        "w1",
        &["worker", "-c", conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );
    site::wait_status(&ctl, "w1", "good", "success", WAIT);
    site::wait_status(&ctl, "w1", "bad", "failed", WAIT);
    site::wait_status(&ctl, "w1", "tree", "success", WAIT);

    let prometheus_port = site::free_port();
    let config = dir.join("prometheus.yml");
    write(
        &config,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             - job_name: manager\n  scheme: https\n  tls_config:\n    ca_file: {ca}\n    server_name: localhost\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n\
             - job_name: worker\n  static_configs:\n  - targets: ['127.0.0.1:{health}']\n",
            ca = env.ca_cert.display(),
        ),
    );
    let _prometheus = Daemon::start_program(
        "prometheus",
        Path::new("/usr/bin/prometheus"),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &dir.join("prometheus.log"),
    );
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");

    // The other Rust port's names, labels and status codes, as Prometheus stored them.
    let deadline = std::time::Instant::now() + WAIT;
    let mut status = loop {
        let status = query(&prometheus, "tunasync_mirror_status");
        if status.len() == 3 {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus has {status:?}; its targets: {}",
            get_plain(&format!("{prometheus}/api/v1/targets")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    status.sort();
    let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    };
    assert_eq!(status, pairs(&[("bad", "4"), ("good", "3"), ("tree", "3")]));
    let size = query(&prometheus, "tunasync_mirror_size_bytes{mirror=\"good\"}");
    assert_eq!(size, pairs(&[("good", "1610612736")]));
    let up = query(&prometheus, "up");
    assert!(up.iter().all(|(_, value)| value == "1"), "{up:?}");
    let online = query(&prometheus, "tunasync_worker_online");
    assert_eq!(online, pairs(&[("w1", "1")]));
    // What the rsync run transferred, from its --stats, under the other port's names.
    let last = query(
        &prometheus,
        "tunasync_mirror_last_transferred_bytes{mirror=\"tree\"}",
    );
    let total = query(
        &prometheus,
        "tunasync_mirror_total_transferred_bytes{mirror=\"tree\"}",
    );
    let bytes: u64 = last
        .first()
        .map_or(0, |(_, value)| value.parse().unwrap_or(0));
    assert!(bytes > 0, "{last:?}");
    assert_eq!(total, last);

    // The worker's own metrics: its runs by result.
    let mut runs = Vec::new();
    wait_for(WAIT, "Prometheus to have the worker's runs", || {
        runs = query(&prometheus, "tunasync_worker_runs_total");
        runs.len() == 3
    });
    runs.sort();
    assert_eq!(runs, pairs(&[("bad", "1"), ("good", "1"), ("tree", "1")]));
}
