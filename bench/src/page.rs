//! The status page and job logs: `GET /` with N jobs (plain, gzip, 304), and how long a line
//! a job writes takes to reach a client following its log through the manager.
//!
//! Errors end a row with a row that says what failed (the release build aborts on a panic,
//! which would leave the worker process behind).

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use tunasync_shared::testkit::BrokerEnv;

use crate::Row;
use crate::rows::{feed_jobs, ratio, tunasync_jobs_anchor};
use crate::setup::{self, Child};

const WRK_SECONDS: u64 = 5;

fn failed(what: &str, error: String) -> Vec<Row> {
    vec![Row::failed(what, error)]
}

async fn wrk(url: String, headers: Vec<String>) -> Result<f64, String> {
    tokio::task::spawn_blocking(move || {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        setup::wrk(&url, 32, WRK_SECONDS, &headers)
    })
    .await
    .map_err(|_| "wrk did not finish".to_owned())
}

/// `GET /` with `n_jobs` jobs over HTTPS: the HTML's size, plain and gzip-compressed, and
/// requests per second for each, and for a 304.
pub async fn status_page(n_jobs: usize) -> Vec<Row> {
    let what = format!("GET / (status page), {n_jobs} jobs, HTTPS");
    match measure_page(n_jobs).await {
        Ok(rows) => rows,
        Err(error) => failed(&what, error),
    }
}

async fn measure_page(n_jobs: usize) -> Result<Vec<Row>, String> {
    let env = BrokerEnv::get();
    let (anchor_rps, anchor_day) = tunasync_jobs_anchor();
    let manager = setup::start_manager(&env, None, true).await;
    feed_jobs(&env, &manager.namespace, n_jobs, &manager.running).await;
    let client = setup::ca_client(&env)?;
    let url = format!("{}/", manager.url);
    let plain = client
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("GET /: {err}"))?;
    let tag = plain
        .headers()
        .get("etag")
        .and_then(|tag| tag.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let html = plain.bytes().await.map_err(|err| format!("GET /: {err}"))?;
    let zipped = client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .map_err(|err| format!("GET / (gzip): {err}"))?
        .bytes()
        .await
        .map_err(|err| format!("GET / (gzip): {err}"))?;
    let ours = wrk(url.clone(), vec![]).await?;
    let gzip = wrk(url.clone(), vec!["Accept-Encoding: gzip".into()]).await?;
    let unchanged = wrk(url.clone(), vec![format!("If-None-Match: {tag}")]).await?;
    manager.shutdown.cancel();
    let _ = manager.running.wait().await;
    Ok(vec![
        Row {
            what: format!(
                "GET / (status page HTML), {n_jobs} jobs ({} KB), HTTPS, 32 conns",
                html.len() / 1024
            ),
            figure: format!("{ours:.0} req/s"),
            baseline: format!(
                "tunasync {anchor_rps:.0} req/s (GET /jobs, 1000 jobs, HTTP, measured {anchor_day})"
            ),
            ratio: ratio(ours, anchor_rps),
            target: "–".into(),
        },
        Row {
            what: format!(
                "GET / (status page HTML), {n_jobs} jobs, HTTPS, gzip ({} KB on the wire)",
                zipped.len() / 1024
            ),
            figure: format!("{gzip:.0} req/s"),
            baseline: format!(
                "tunasync {anchor_rps:.0} req/s (GET /jobs, 1000 jobs, HTTP, measured {anchor_day})"
            ),
            ratio: ratio(gzip, anchor_rps),
            target: "–".into(),
        },
        Row {
            what: format!("GET / (status page), {n_jobs} jobs, HTTPS, If-None-Match → 304"),
            figure: format!("{unchanged:.0} req/s"),
            baseline: format!("{ours:.0} req/s (the 200 path above)"),
            ratio: ratio(unchanged, ours),
            target: "> 1×".into(),
        },
    ])
}

/// A job writes `n_lines` lines, one every `gap`, each stamped with the time it was
/// written; a client follows the job's log through the manager and notes when each
/// arrives. The job is `cat` of a FIFO the bench writes into, so a line reaches the log
/// file when the bench writes it.
pub async fn log_follow(n_lines: usize, gap: Duration) -> Vec<Row> {
    let what = format!("job log line written → received by a following client, {n_lines} lines");
    match measure_follow(n_lines, gap).await {
        Ok(rows) => rows,
        Err(error) => failed(&what, error),
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or(0)
}

async fn measure_follow(n_lines: usize, gap: Duration) -> Result<Vec<Row>, String> {
    let env = BrokerEnv::get();
    let manager = setup::start_manager(&env, None, true).await;
    let dir = tempfile::tempdir().map_err(|err| format!("a temp dir: {err}"))?;
    let root = dir.path();
    let fifo = root.join("lines.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map_err(|err| format!("mkfifo: {err}"))?;
    if !made.success() {
        return Err("mkfifo failed".into());
    }
    let conf = root.join("worker.conf");
    let text = format!(
        "[broker]\nurl = {url:?}\nca_cert = {ca:?}\nnamespace = {namespace:?}\n\
         [global]\nname = \"follower\"\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\n\
         mirror_dir = \"{root}/data\"\nconcurrent = 1\ninterval = 1440\nheartbeat_interval = \"1s\"\n\
         [[mirrors]]\nname = \"lines\"\nprovider = \"command\"\ncommand = \"/bin/cat {fifo}\"\n",
        url = env.amqps_url,
        ca = env.ca_cert,
        namespace = manager.namespace,
        root = root.display(),
        fifo = fifo.display(),
    );
    std::fs::write(&conf, text).map_err(|err| format!("the worker's config: {err}"))?;
    let _worker: Child = setup::tunasync(&["worker", "-c", &conf.display().to_string()]);
    let client = setup::ca_client(&env)?;
    // Until the job runs (blocked reading the FIFO).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs: serde_json::Value = match client
            .get(format!("{}/workers/follower/jobs", manager.url))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if jobs[0]["status"] == "syncing" {
            break;
        }
        if Instant::now() > deadline {
            return Err("the job did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The writer: opened once the follow is on, so cat (and the run) ends when it closes.
    let (open_tx, open_rx) = tokio::sync::oneshot::channel::<()>();
    let writer_fifo = fifo.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let _ = open_rx.blocking_recv();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_fifo)
            .map_err(|err| format!("the FIFO: {err}"))?;
        for idx in 0..n_lines {
            writeln!(file, "line {idx} written at {}", unix_nanos())
                .map_err(|err| format!("the FIFO: {err}"))?;
            std::thread::sleep(gap);
        }
        Ok(())
    });
    let mut response = client
        .get(format!(
            "{}/jobs/follower/lines/log?follow=true",
            manager.url
        ))
        .send()
        .await
        .map_err(|err| format!("the follow: {err}"))?;
    if response.status() != 200 {
        return Err(format!("the follow answered {}", response.status()));
    }
    let _ = open_tx.send(());
    let mut latencies = Vec::with_capacity(n_lines);
    let mut carry = String::new();
    let limit = gap * n_lines as u32 + Duration::from_secs(60);
    let ended = tokio::time::timeout(limit, async {
        while let Ok(Some(piece)) = response.chunk().await {
            let now = unix_nanos();
            carry.push_str(&String::from_utf8_lossy(&piece));
            while let Some(end) = carry.find('\n') {
                let line: String = carry.drain(..=end).collect();
                if let Some(stamp) = line
                    .trim_end()
                    .rsplit(' ')
                    .next()
                    .and_then(|stamp| stamp.parse::<u128>().ok())
                {
                    latencies.push(Duration::from_nanos(
                        u64::try_from(now.saturating_sub(stamp)).unwrap_or(u64::MAX),
                    ));
                }
            }
        }
    })
    .await;
    let written = writer.await.map_err(|_| "the writer stopped".to_owned())?;
    written?;
    if ended.is_err() {
        return Err("the follow did not end with the run".into());
    }
    manager.shutdown.cancel();
    let _ = manager.running.wait().await;
    if latencies.len() != n_lines {
        return Err(format!("{} of {n_lines} lines arrived", latencies.len()));
    }
    latencies.sort();
    let at = |share: usize| latencies[(latencies.len() * share / 100).min(latencies.len() - 1)];
    let ms = |latency: Duration| latency.as_secs_f64() * 1e3;
    Ok(vec![Row {
        what: format!(
            "job log line written → received by a client following it through the manager \
             ({n_lines} lines, one per {} ms, HTTPS, loopback)",
            gap.as_millis()
        ),
        figure: format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            ms(at(50)),
            ms(at(99)),
            ms(latencies[latencies.len() - 1])
        ),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "p99 < 200 ms".into(),
    }])
}
