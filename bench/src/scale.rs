//! The manager's cost as the work grows (`scale`), and over time (`soak`).
//!
//! `scale`: for each size, simulated workers say `hello` with their jobs to a manager
//! binary (release), which is then restarted on that store: time to ready, idle RSS and
//! bytes per job (against an empty manager measured in the same run), `GET /jobs` (gzip)
//! throughput and p99, the time to take every worker's `hello` after a mass restart, and
//! `GET /jobs` p99 while 100 status events a second arrive.
//!
//! `soak`: 1000 simulated workers × 20 jobs, heartbeats every 10 s and status changes, for
//! `BENCH_SOAK_SECS` (default 1800), `/metrics` scraped every 15 s as Prometheus would
//! (with gzip): RSS (read before that tenth's scrape) and open fds at each tenth of the run,
//! RSS's low and high within each tenth (read every second), the ingest lag over the second
//! and the last tenth, and the size of one `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, Outgoing, Transport};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{BrokerEnv, unique_namespace};
use tunasync_shared::wire::SequenceSource;

use crate::Row;
use crate::rows::{ManagerProcess, manager_process, ratio};
use crate::setup;

/// How long each wrk measurement runs.
const WRK_SECONDS: u64 = 10;
/// Connections of the throughput measurements.
const WRK_CONNECTIONS: usize = 8;
/// Requests per second of the latency measurements: a busy status page's readers.
const PACED_RATE: u32 = 20;
/// How long each latency measurement runs: 600 requests, so the p99 is the sixth slowest
/// rather than one unlucky request.
const PACED_SECONDS: u64 = 30;

/// One `/metrics` scrape as Prometheus makes it (asking for gzip).
struct Scrape {
    text: String,
    /// What came over the wire: the gzip body, or the text when the manager sent it plain.
    wire_bytes: usize,
}

/// The manager's `/metrics`, if it answers.
async fn scrape(client: &reqwest::Client, url: &str) -> Option<Scrape> {
    let response = client
        .get(format!("{url}/metrics"))
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .ok()?;
    let gzipped = response
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .is_some_and(|coding| coding == "gzip");
    let body = response.bytes().await.ok()?;
    let text = if gzipped {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .ok()?;
        text
    } else {
        String::from_utf8(body.to_vec()).ok()?
    };
    Some(Scrape {
        text,
        wire_bytes: body.len(),
    })
}

/// A number of a `/metrics` text (the sum over its labels), if it is there.
fn metric_in(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// A number of the manager's `/metrics` (the sum over its labels), if it answers.
async fn metric(client: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    metric_in(&scrape(client, url).await?.text, name)
}

/// The manager's `GET /jobs` renders so far: seconds spent, and how many.
async fn renders(client: &reqwest::Client, url: &str) -> (f64, f64) {
    (
        metric(client, url, "tunasync_jobs_render_seconds_sum")
            .await
            .unwrap_or(0.0),
        metric(client, url, "tunasync_jobs_render_seconds_count")
            .await
            .unwrap_or(0.0),
    )
}

async fn events_applied(client: &reqwest::Client, url: &str) -> f64 {
    metric(client, url, "tunasync_events_applied_total")
        .await
        .unwrap_or(0.0)
}

/// Waits until the manager has applied `target` events in all (bounded: 10 minutes).
async fn wait_applied(client: &reqwest::Client, url: &str, target: f64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while events_applied(client, url).await < target {
        if Instant::now() > deadline {
            return Err(format!(
                "the manager did not apply {target} events in 10 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits for `/readyz` to answer 200 (bounded: 2 minutes); the time it took.
async fn wait_ready(client: &reqwest::Client, url: &str, since: Instant) -> Result<f64, String> {
    let deadline = since + Duration::from_secs(120);
    loop {
        if client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
        {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err("the manager was not ready in 2 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `wrk --latency`: requests per second and the 99th percentile in milliseconds.
fn wrk_latency(url: &str, headers: &[&str]) -> (f64, f64) {
    let mut command = std::process::Command::new("wrk");
    command
        .arg("-t2")
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{WRK_SECONDS}s"))
        .arg("--latency");
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command.arg(url).output().unwrap_or_else(|err| {
        panic!("cannot run wrk ({err}): install it with `apt-get install wrk`")
    });
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .and_then(|value| millis(value.trim()))
        .unwrap_or_else(|| panic!("no p99 in wrk's output:\n{text}"));
    (rps, p99)
}

/// `GET url` (gzip) at a steady `per_second` for `length`, each request on its own
/// schedule (a slow answer does not hold back the next): the p50 and p99 in milliseconds.
/// The reader runs on a thread and runtime of its own, so the simulated workers' tasks in
/// this process do not delay it and what it measures is the manager.
async fn paced_latency(url: &str, per_second: u32, length: Duration) -> Result<(f64, f64), String> {
    let url = url.to_owned();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("paced-reader".into())
        .spawn(move || {
            let measured = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())
                .and_then(|runtime| runtime.block_on(paced_reads(&url, per_second, length)));
            let _ = sender.send(measured);
        })
        .map_err(|err| err.to_string())?;
    receiver
        .await
        .map_err(|_| "the paced reader stopped".to_string())?
}

async fn paced_reads(url: &str, per_second: u32, length: Duration) -> Result<(f64, f64), String> {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let started = Instant::now();
    let mut requests = Vec::new();
    while started.elapsed() < length {
        // Each request is timed from when it was due, so a late start counts too.
        let due = tick.tick().await;
        let request = client.get(url).header("Accept-Encoding", "gzip");
        requests.push(tokio::spawn(async move {
            let body = request.send().await.ok()?.bytes().await.ok()?;
            (!body.is_empty()).then(|| due.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut millis = Vec::with_capacity(requests.len());
    for request in requests {
        match request.await {
            Ok(Some(ms)) => millis.push(ms),
            _ => return Err("a GET /jobs failed".into()),
        }
    }
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() as f64 * q) as usize).min(millis.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

/// wrk's durations (`812.00us`, `3.21ms`, `1.02s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(us) = text.strip_suffix("us") {
        (us, 0.001)
    } else if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|value| value * factor)
}

/// Publishes status events at `per_second` (a job of a worker, in turn syncing and
/// success) until cancelled; the number sent.
async fn steady_events(
    publisher: AmqpBroker,
    n_workers: usize,
    jobs_per_worker: usize,
    per_second: u32,
    seq: Arc<SequenceSource>,
    stop: CancellationToken,
) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => return sent,
            _ = tick.tick() => {}
        }
        // xorshift: a job picked at random, the same sequence every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let worker = (state % n_workers as u64) as usize;
        let job = ((state >> 32) % jobs_per_worker as u64) as usize;
        let status = if sent.is_multiple_of(2) {
            SyncStatus::Syncing
        } else {
            SyncStatus::Success
        };
        let envelope = setup::status_event(&setup::sim_worker(worker), job, status, &seq);
        let publisher = publisher.clone();
        // Publishing waits for the confirm: in a task, so the rate holds.
        tokio::spawn(async move {
            let _ = publisher.publish(Outgoing::event(&envelope)).await;
        });
        sent += 1;
    }
}

pub async fn scale(sizes: &[(usize, usize)]) -> Vec<Row> {
    let env = BrokerEnv::get();
    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    // An empty manager: the base the bytes per job are counted from.
    let empty_kib = {
        let namespace = unique_namespace("scale");
        let manager = manager_process(&env, &namespace);
        if let Err(err) = wait_ready(&client, &manager.url, Instant::now()).await {
            return vec![Row::failed("scale", err)];
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        setup::status_kib(manager.child.0.id(), "VmRSS")
    };
    for &(n_jobs, n_workers) in sizes {
        match measure(&env, &client, n_jobs, n_workers, empty_kib).await {
            Ok(mut measured) => rows.append(&mut measured),
            Err(err) => rows.push(Row::failed(&format!("scale, {n_jobs} jobs"), err)),
        }
    }
    rows
}

async fn measure(
    env: &BrokerEnv,
    client: &reqwest::Client,
    n_jobs: usize,
    n_workers: usize,
    empty_kib: u64,
) -> Result<Vec<Row>, String> {
    let jobs_per_worker = n_jobs / n_workers;
    let namespace = unique_namespace("scale");
    let mut manager: ManagerProcess = manager_process(env, &namespace);
    wait_ready(client, &manager.url, Instant::now()).await?;
    let shutdown = CancellationToken::new();
    let publisher = setup::publisher(env, &namespace, &shutdown).await;
    let seq = Arc::new(SequenceSource::new());

    // The store gets every job from the workers' first hellos.
    let applied = events_applied(client, &manager.url).await;
    let sessions = setup::new_sessions(n_workers);
    setup::publish_all(
        &publisher,
        setup::hellos(&sessions, jobs_per_worker, &seq),
        32,
    )
    .await;
    wait_applied(client, &manager.url, applied + n_workers as f64).await?;

    // Restarted on that store: ready, then idle.
    manager.restart();
    let ready_secs = wait_ready(client, &manager.url, Instant::now()).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_kib = setup::status_kib(manager.child.0.id(), "VmRSS");
    let per_job = (rss_kib.saturating_sub(empty_kib) as f64 * 1024.0) / n_jobs as f64;

    // Every worker restarts at once.
    let applied = events_applied(client, &manager.url).await;
    let sessions = setup::new_sessions(n_workers);
    let started = Instant::now();
    setup::publish_all(
        &publisher,
        setup::hellos(&sessions, jobs_per_worker, &seq),
        32,
    )
    .await;
    wait_applied(client, &manager.url, applied + n_workers as f64).await?;
    let hellos_secs = started.elapsed().as_secs_f64();

    // From now on the workers are alive: heartbeats every 10 s.
    let stop_beats = CancellationToken::new();
    let beats = tokio::spawn(setup::heartbeats(
        publisher.clone(),
        sessions.clone(),
        seq.clone(),
        stop_beats.clone(),
    ));
    // GET /jobs (gzip), idle (heartbeats only), then under a steady event rate.
    let url = format!("{}/jobs", manager.url);
    // The first read after the hellos renders every chunk: not part of the figure. A body
    // under 1 MB goes out uncompressed then and is compressed right after: the size is
    // read a moment later.
    let _ = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .map_err(|err| err.to_string())?
        .bytes()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gzip_kb = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .map_err(|err| err.to_string())?
        .bytes()
        .await
        .map_or(0, |body| body.len() / 1024);
    let idle_url = url.clone();
    let (idle_rps, idle_p99) =
        tokio::task::spawn_blocking(move || wrk_latency(&idle_url, &["Accept-Encoding: gzip"]))
            .await
            .map_err(|err| err.to_string())?;
    // A busy status page, not a saturated machine: a steady rate of readers.
    let (idle_paced_p50, idle_paced_p99) =
        paced_latency(&url, PACED_RATE, Duration::from_secs(PACED_SECONDS)).await?;
    let stop = CancellationToken::new();
    let rate = 100;
    let events = tokio::spawn(steady_events(
        publisher.clone(),
        n_workers,
        jobs_per_worker,
        rate,
        seq.clone(),
        stop.clone(),
    ));
    let applied = events_applied(client, &manager.url).await;
    let renders_before = renders(client, &manager.url).await;
    let (busy_paced_p50, busy_paced_p99) =
        paced_latency(&url, PACED_RATE, Duration::from_secs(PACED_SECONDS)).await?;
    let renders_after = renders(client, &manager.url).await;
    let n_renders = renders_after.1 - renders_before.1;
    let render_ms = if n_renders > 0.0 {
        (renders_after.0 - renders_before.0) / n_renders * 1000.0
    } else {
        0.0
    };
    let busy_url = url.clone();
    let (busy_rps, busy_p99) =
        tokio::task::spawn_blocking(move || wrk_latency(&busy_url, &["Accept-Encoding: gzip"]))
            .await
            .map_err(|err| err.to_string())?;
    let applied_during = events_applied(client, &manager.url).await - applied;
    stop.cancel();
    let sent = events.await.map_err(|err| err.to_string())?;
    stop_beats.cancel();
    let _ = beats.await;
    shutdown.cancel();

    let size = format!("{n_jobs} jobs, {n_workers} workers");
    Ok(vec![
        Row {
            what: format!("scale: {size}: start to ready (store loaded)"),
            figure: format!("{ready_secs:.2} s"),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "< 5 s at 100,000".into(),
        },
        Row {
            what: format!("scale: {size}: idle RSS, bytes per job"),
            figure: format!("{:.1} MB, {per_job:.0} B/job", rss_kib as f64 / 1024.0),
            baseline: format!("{:.1} MB empty", empty_kib as f64 / 1024.0),
            ratio: "–".into(),
            target: "flat per job".into(),
        },
        Row {
            what: format!("scale: {size}: every worker's hello after a mass restart"),
            figure: format!("{hellos_secs:.2} s"),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
        },
        Row {
            what: format!(
                "scale: {size}: GET /jobs gzip ({gzip_kb} KB), {WRK_CONNECTIONS} conns (wrk), idle"
            ),
            figure: format!("{idle_rps:.0} req/s, p99 {idle_p99:.1} ms"),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
        },
        Row {
            what: format!(
                "scale: {size}: GET /jobs gzip, {WRK_CONNECTIONS} conns (wrk, saturating both cores), under {rate} status events/s"
            ),
            figure: format!("{busy_rps:.0} req/s, p99 {busy_p99:.1} ms"),
            baseline: format!("{idle_rps:.0} req/s, p99 {idle_p99:.1} ms idle"),
            ratio: ratio(busy_p99, idle_p99),
            target: "–".into(),
        },
        Row {
            what: format!(
                "scale: {size}: GET /jobs gzip at {PACED_RATE} req/s, under {rate} status events/s ({sent} sent, {applied_during:.0} events applied while measured, heartbeats included)"
            ),
            figure: format!(
                "p50 {busy_paced_p50:.1} ms, p99 {busy_paced_p99:.1} ms ({n_renders:.0} renders, {render_ms:.2} ms each)"
            ),
            baseline: format!(
                "p50 {idle_paced_p50:.1} ms, p99 {idle_paced_p99:.1} ms idle (heartbeats only)"
            ),
            ratio: ratio(busy_paced_p99, idle_paced_p99),
            target: "p99 ≤ 2×".into(),
        },
    ])
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// What the soak samples at one moment.
struct Sample {
    rss_kib: u64,
    anon_kib: u64,
    fds: usize,
    lag_sum: f64,
    lag_count: f64,
    metrics_bytes: usize,
    metrics_wire_bytes: usize,
}

/// Reads the manager's RSS and fds first, then scrapes `/metrics` once for the lag
/// histogram (so the scrape's own transient memory is not in the RSS read).
async fn sample(client: &reqwest::Client, manager: &ManagerProcess) -> Sample {
    let pid = manager.child.0.id();
    let rss_kib = setup::status_kib(pid, "VmRSS");
    let anon_kib = setup::status_kib(pid, "RssAnon");
    let fds = open_fds(pid);
    let (text, wire_bytes) = scrape(client, &manager.url)
        .await
        .map_or((String::new(), 0), |scrape| {
            (scrape.text, scrape.wire_bytes)
        });
    Sample {
        rss_kib,
        anon_kib,
        fds,
        lag_sum: metric_in(&text, "tunasync_ingest_lag_seconds_sum").unwrap_or(0.0),
        lag_count: metric_in(&text, "tunasync_ingest_lag_seconds_count").unwrap_or(0.0),
        metrics_bytes: text.len(),
        metrics_wire_bytes: wire_bytes,
    }
}

/// Each tenth's lowest and highest reading, in MB: "low–high, …".
fn tenths_low_high(readings: &[(Duration, u64)], tenth: Duration) -> String {
    let mut spans: [Option<(u64, u64)>; 10] = [None; 10];
    for (at, kib) in readings {
        let n = ((at.as_secs_f64() / tenth.as_secs_f64()) as usize).min(9);
        let (low, high) = spans[n].unwrap_or((*kib, *kib));
        spans[n] = Some((low.min(*kib), high.max(*kib)));
    }
    let mb = |kib: u64| kib as f64 / 1024.0;
    spans
        .iter()
        .flatten()
        .map(|(low, high)| format!("{:.0}–{:.0}", mb(*low), mb(*high)))
        .collect::<Vec<_>>()
        .join(", ")
        + " MB"
}

/// The mean ingest lag between two samples, in milliseconds.
fn mean_lag_ms(from: &Sample, to: &Sample) -> f64 {
    let count = to.lag_count - from.lag_count;
    if count > 0.0 {
        (to.lag_sum - from.lag_sum) / count * 1000.0
    } else {
        0.0
    }
}

pub async fn soak(n_workers: usize, jobs_per_worker: usize, length: Duration) -> Vec<Row> {
    let env = BrokerEnv::get();
    let client = reqwest::Client::new();
    let namespace = unique_namespace("soak");
    let manager = manager_process(&env, &namespace);
    if let Err(err) = wait_ready(&client, &manager.url, Instant::now()).await {
        return vec![Row::failed("soak", err)];
    }
    let shutdown = CancellationToken::new();
    let publisher = setup::publisher(&env, &namespace, &shutdown).await;
    let seq = Arc::new(SequenceSource::new());
    let sessions = setup::new_sessions(n_workers);
    let hellos = setup::hellos(&sessions, jobs_per_worker, &seq);
    let applied = events_applied(&client, &manager.url).await;
    setup::publish_all(&publisher, hellos, 32).await;
    if let Err(err) = wait_applied(&client, &manager.url, applied + n_workers as f64).await {
        return vec![Row::failed("soak", err)];
    }

    // Status changes all along: 50 a second (with 20,000 jobs, each job's status changes
    // every 7 minutes on average).
    let stop = CancellationToken::new();
    let events = tokio::spawn(steady_events(
        publisher.clone(),
        n_workers,
        jobs_per_worker,
        50,
        seq.clone(),
        stop.clone(),
    ));
    // A status page reading `GET /jobs` every second.
    let reader = {
        let client = client.clone();
        let url = format!("{}/jobs", manager.url);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.is_cancelled() {
                if let Ok(response) = client.get(&url).send().await {
                    let _ = response.bytes().await;
                    reads += 1;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            reads
        })
    };
    let beats = tokio::spawn(setup::heartbeats(
        publisher.clone(),
        sessions.clone(),
        seq.clone(),
        stop.clone(),
    ));
    // RSS once a second all along, to give each tenth its low and high: a reading at one
    // moment cannot tell a scrape's passing buffers from growth.
    let rss_track = {
        let pid = manager.child.0.id();
        let stop = stop.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut readings: Vec<(Duration, u64)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.is_cancelled() {
                tick.tick().await;
                readings.push((started.elapsed(), setup::status_kib(pid, "VmRSS")));
            }
            readings
        })
    };
    // One sampler, in sequence: a sample (RSS and fds, then one scrape) at each tenth of
    // the run, and between them a scrape every 15 s as Prometheus would
    // do, so the scrape's cost is part of the steady state rather than a spike at the
    // checkpoints.
    let tenth = (length / 10).max(Duration::from_secs(1));
    let scrape_every = (length / 20).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::with_capacity(10);
    for n in 1..=10u32 {
        let due = tenth * n;
        while let Some(wait) = due.checked_sub(started.elapsed()) {
            if wait <= scrape_every {
                tokio::time::sleep(wait).await;
                break;
            }
            tokio::time::sleep(scrape_every).await;
            let _ = scrape(&client, &manager.url).await;
        }
        samples.push(sample(&client, &manager).await);
    }
    stop.cancel();
    let _ = beats.await;
    let readings = rss_track.await.unwrap_or_default();
    let sent = events.await.unwrap_or(0);
    let reads = reader.await.unwrap_or(0);
    shutdown.cancel();
    let (Some(warm), Some(first_end), Some(last_start), Some(end)) = (
        samples.first(),
        samples.get(1),
        samples.get(8),
        samples.get(9),
    ) else {
        return vec![Row::failed("soak", "no samples".into())];
    };
    let span = if length < Duration::from_secs(60) {
        format!("{} s", length.as_secs())
    } else {
        format!("{:.0} min", length.as_secs_f64() / 60.0)
    };
    let what = format!(
        "soak {span}: {n_workers} workers × {jobs_per_worker} jobs, heartbeats every 10 s, {sent} status events, {reads} GET /jobs"
    );
    let mb = |sample: &Sample| sample.rss_kib as f64 / 1024.0;
    vec![
        Row {
            what: format!("{what}: manager RSS"),
            figure: format!("{:.1} → {:.1} MB", mb(first_end), mb(end)),
            baseline: format!("after {:.0} s, at the end", (tenth * 2).as_secs_f64()),
            ratio: ratio(mb(end), mb(first_end)),
            target: "flat".into(),
        },
        Row {
            what: format!("{what}: manager RSS (of which anonymous) at each tenth of the run"),
            figure: samples
                .iter()
                .map(|s| format!("{:.0} ({:.0})", mb(s), s.anon_kib as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
                + " MB",
            baseline: "–".into(),
            ratio: "–".into(),
            target: "levels off".into(),
        },
        Row {
            what: format!("{what}: manager RSS low–high within each tenth (read every second)"),
            figure: tenths_low_high(&readings, tenth),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "no trend in the lows".into(),
        },
        Row {
            what: format!("{what}: open fds"),
            figure: format!("{} → {}", first_end.fds, end.fds),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "flat".into(),
        },
        Row {
            what: format!(
                "{what}: mean ingest lag, second and last tenth ({:.0} s each)",
                tenth.as_secs_f64()
            ),
            figure: format!(
                "{:.1} → {:.1} ms",
                mean_lag_ms(warm, first_end),
                mean_lag_ms(last_start, end)
            ),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "flat".into(),
        },
        Row {
            what: format!(
                "{what}: size of one `/metrics` text, scraped every {:.0} s",
                scrape_every.as_secs_f64()
            ),
            figure: format!(
                "{:.1} MB ({:.2} MB gzip)",
                end.metrics_bytes as f64 / 1_048_576.0,
                end.metrics_wire_bytes as f64 / 1_048_576.0
            ),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
        },
    ]
}
