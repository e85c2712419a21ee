//! Pools: the same burst of pooled runs through 1, 2 and 4 real workers (2 slots each),
//! and how long a run waits from coming due to a member taking it while slots are free.
//!
//! Every member lists the same pooled mirrors (`command = "/bin/sleep S"`); the manager
//! makes all of them due at once when it first hears of them. The makespan is read from the
//! runs' history (first start to last end), so process start-up does not count. The wait
//! figure is the manager's own `tunasync_pool_wait_seconds` histogram, over `start`s sent
//! while every slot is free.

use std::time::Duration;

use serde_json::Value;
use tunasync_shared::testkit::{BrokerEnv, unique_namespace};

use crate::Row;
use crate::rows::{ManagerProcess, manager_process};
use crate::setup::{self, Child};

/// Slots per worker.
const SLOTS: usize = 2;
const POOL: &str = "bench";
/// Bounds every wait of this row.
const PATIENCE: Duration = Duration::from_secs(600);

struct Site {
    manager: ManagerProcess,
    _workers: Vec<Child>,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

fn mirror(idx: usize) -> String {
    format!("p{idx:03}")
}

fn start_site(env: &BrokerEnv, n_workers: usize, n_mirrors: usize, run_secs: f64) -> Site {
    let namespace = unique_namespace("pools");
    let manager = manager_process(env, &namespace);
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path();
    let mut mirrors = String::new();
    for idx in 0..n_mirrors {
        mirrors.push_str(&format!(
            "[[mirrors]]\nname = \"{}\"\nprovider = \"command\"\ncommand = \"/bin/sleep {run_secs}\"\n",
            mirror(idx)
        ));
    }
    let workers = (0..n_workers)
        .map(|idx| {
            let conf = format!(
                "[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {namespace:?}\n\
                 [global]\nname = \"member-{idx}\"\nlog_dir = \"{root}/log/member-{idx}/{{{{.Name}}}}\"\n\
                 mirror_dir = \"{root}/shared\"\nconcurrent = {SLOTS}\npool = \"{POOL}\"\ninterval = 1440\n{mirrors}",
                env.amqps_url,
                env.ca_cert,
                root = root.display(),
            );
            let path = root.join(format!("member-{idx}.conf"));
            std::fs::write(&path, conf).expect("a config");
            setup::tunasync(&["worker", "-c", path.to_str().expect("a path")])
        })
        .collect();
    Site {
        manager,
        _workers: workers,
        _dir: dir,
        client: reqwest::Client::new(),
    }
}

impl Site {
    async fn get(&self, path: &str) -> Option<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.manager.url))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// The pooled mirrors (`GET /workers/POOL/jobs`).
    async fn pooled_jobs(&self) -> Vec<Value> {
        self.get(&format!("/workers/{POOL}/jobs"))
            .await
            .and_then(|jobs| jobs.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until `n` pooled mirrors show `success`.
    async fn wait_success(&self, n: usize) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let jobs = self.pooled_jobs().await;
            let done = jobs.iter().filter(|job| job["status"] == "success").count();
            if done >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "only {done} of {n} runs ended in {PATIENCE:?} ({} pooled mirrors shown)",
                    jobs.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn history(&self, mirror: &str) -> Vec<Value> {
        self.get(&format!("/jobs/{POOL}/{mirror}/history"))
            .await
            .and_then(|runs| runs.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until each of `mirrors` has a run more than `before` says, ended `success`.
    async fn wait_new_runs(&self, mirrors: &[String], before: &[usize]) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        for (mirror, before) in mirrors.iter().zip(before) {
            loop {
                let history = self.history(mirror).await;
                if history.len() > *before && history[0]["result"] == "success" {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!("no new run of {mirror} in {PATIENCE:?}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// `(started, ended)` of each mirror's newest run, in unix seconds.
    async fn runs(&self, n_mirrors: usize) -> Vec<(f64, f64)> {
        let mut runs = Vec::with_capacity(n_mirrors);
        for idx in 0..n_mirrors {
            if let Some(run) = self.history(&mirror(idx)).await.first() {
                let at = |key: &str| crate::rows::chrono_seconds(run[key].as_str().unwrap_or(""));
                runs.push((at("started"), at("ended")));
            }
        }
        runs
    }

    async fn start(&self, mirror: &str) -> Result<(), String> {
        let body = serde_json::json!({"cmd": "start", "worker_id": POOL, "mirror_id": mirror});
        let sent = self
            .client
            .post(format!("{}/cmd", self.manager.url))
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("start {mirror}: {}", response.status())),
            Err(err) => Err(format!("start {mirror}: {err}")),
        }
    }

    async fn waits(&self) -> Waits {
        let text = match self
            .client
            .get(format!("{}/metrics", self.manager.url))
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Waits::parse(&text)
    }
}

/// `tunasync_pool_wait_seconds` as scraped: cumulative buckets, sum, count.
#[derive(Default)]
struct Waits {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Waits {
    fn parse(text: &str) -> Waits {
        let mut waits = Waits::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Some(bound) = name
                .strip_prefix("tunasync_pool_wait_seconds_bucket{le=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
                && let (Ok(bound), Ok(count)) = (bound.parse::<f64>(), value.parse::<u64>())
            {
                waits.buckets.push((bound, count));
            } else if name == "tunasync_pool_wait_seconds_sum" {
                waits.sum = value.parse().unwrap_or(0.0);
            } else if name == "tunasync_pool_wait_seconds_count" {
                waits.count = value.parse().unwrap_or(0);
            }
        }
        waits
    }

    /// The smallest bucket bound at or under which `quantile` of the waits since `before`
    /// fall (the histogram's resolution), and their mean.
    fn since(&self, before: &Waits, quantile: f64) -> (Option<f64>, f64, u64) {
        let count = self.count.saturating_sub(before.count);
        let mean = if count > 0 {
            (self.sum - before.sum) / count as f64
        } else {
            0.0
        };
        let wanted = (quantile * count as f64).ceil() as u64;
        let bound = self.buckets.iter().find_map(|(bound, total)| {
            let earlier = before
                .buckets
                .iter()
                .find(|(other, _)| other == bound)
                .map_or(0, |(_, n)| *n);
            (total.saturating_sub(earlier) >= wanted).then_some(*bound)
        });
        (bound, mean, count)
    }
}

/// `n_runs` pooled runs of `run_secs` each through each size of pool in `sizes`; then, on
/// the largest, `rounds` rounds of one `start` per free slot. A failure ends the row (the
/// release build aborts on a panic, which would leave the daemons running).
pub async fn pooled_runs(n_runs: usize, run_secs: f64, sizes: &[usize], rounds: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Err(err) = measure(n_runs, run_secs, sizes, rounds, &mut rows).await {
        rows.push(Row {
            what: "pools".into(),
            figure: format!("failed: {err}"),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
        });
    }
    rows
}

async fn measure(
    n_runs: usize,
    run_secs: f64,
    sizes: &[usize],
    rounds: usize,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let env = BrokerEnv::get();
    let mut first: Option<(usize, f64)> = None;
    let mut last_site = None;
    for &n_workers in sizes {
        let site = start_site(&env, n_workers, n_runs, run_secs);
        site.wait_success(n_runs).await?;
        let runs = site.runs(n_runs).await;
        let begin = runs.iter().map(|run| run.0).fold(f64::INFINITY, f64::min);
        let end = runs.iter().map(|run| run.1).fold(0.0, f64::max);
        let makespan = end - begin;
        let ideal = n_runs as f64 * run_secs / (n_workers * SLOTS) as f64;
        let (scaling, target) = match first {
            None => {
                first = Some((n_workers, makespan));
                ("–".to_owned(), "–".to_owned())
            }
            Some((base_workers, base_makespan)) => {
                let speedup = base_makespan / makespan;
                let linear = n_workers as f64 / base_workers as f64;
                (
                    format!("{:.2}× of linear", speedup / linear),
                    "≥ 0.9× of linear".to_owned(),
                )
            }
        };
        rows.push(Row {
            what: format!(
                "{n_runs} pooled runs of {run_secs} s, {n_workers} worker(s) × {SLOTS} slots"
            ),
            figure: format!(
                "{makespan:.1} s ({:.1} runs/s)",
                runs.len() as f64 / makespan
            ),
            baseline: format!("ideal {ideal:.1} s"),
            ratio: scaling,
            target,
        });
        last_site = Some((site, n_workers));
    }
    if let Some((site, n_workers)) = last_site {
        let slots = n_workers * SLOTS;
        let before = site.waits().await;
        for round in 0..rounds {
            let mirrors: Vec<String> = (0..slots.min(n_runs))
                .map(|idx| mirror((round * slots + idx) % n_runs))
                .collect();
            let mut before = Vec::with_capacity(mirrors.len());
            for name in &mirrors {
                before.push(site.history(name).await.len());
            }
            for name in &mirrors {
                site.start(name).await?;
            }
            // Every slot free again before the next round, so the wait is the scheduler's.
            site.wait_new_runs(&mirrors, &before).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let after = site.waits().await;
        let (p99, mean, count) = after.since(&before, 0.99);
        rows.push(Row {
            what: format!(
                "pooled run due → taken, slots free ({count} starts, {n_workers} workers)"
            ),
            figure: format!(
                "p99 ≤ {} ms, mean {:.1} ms",
                p99.map_or("?".to_owned(), |bound| format!("{:.0}", bound * 1000.0)),
                mean * 1000.0
            ),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "p99 < 100 ms".into(),
        });
    }
    Ok(())
}
