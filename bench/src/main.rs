//! `tunasync-bench`: the control plane measured against baselines taken in the same run.
//!
//! Run it (release build, private broker) with `scripts/bench.sh`. Needs `wrk` for the HTTP
//! rows (`apt-get install wrk`). Each row prints the figure, its baseline and the ratio;
//! nothing here is a pass/fail test.

mod page;
mod pools;
mod rows;
mod scale;
mod setup;

use std::time::Duration;

/// One line of the results table.
pub struct Row {
    pub what: String,
    pub figure: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
}

impl Row {
    /// A row that could not be measured, and why.
    pub fn failed(what: &str, error: String) -> Row {
        Row {
            what: what.to_owned(),
            figure: format!("failed: {error}"),
            baseline: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
        }
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("build measured: {BUILD}");
    println!();
    println!("| what | figure | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what, row.figure, row.baseline, row.ratio, row.target
        );
    }
}

/// Which build of the daemons these figures are for (the bench is built alongside them).
const BUILD: &str = if cfg!(target_env = "musl") {
    "static (musl), scripts/build-static.sh"
} else {
    "default (glibc, dynamically linked), cargo build --release"
};

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|arg| arg == name);
    // Checked before anything starts: a row that finds it missing would end the bench with
    // the daemons it started still running.
    let needs_wrk = ["jobs", "page", "scale"].iter().any(|name| wanted(name));
    if needs_wrk
        && std::process::Command::new("wrk")
            .arg("-v")
            .output()
            .is_err()
    {
        eprintln!("tunasync-bench: these rows need wrk: install it with `apt-get install wrk`");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Vec::new();
    runtime.block_on(async {
        if wanted("jobs") {
            rows.extend(rows::get_jobs(&[1000, 10_000]).await);
        }
        if wanted("events") {
            rows.extend(rows::events_persisted(50_000).await);
        }
        if wanted("page") {
            rows.extend(page::status_page(10_000).await);
        }
        if wanted("follow") {
            rows.extend(page::log_follow(500, Duration::from_millis(20)).await);
        }
        if wanted("cmd") {
            rows.extend(rows::command_round_trip(300).await);
        }
        if wanted("rsync") {
            rows.extend(rows::rsync_job(20_000).await);
        }
        if wanted("rss") {
            rows.extend(rows::idle_rss(1000, 20).await);
        }
        if wanted("pools") {
            rows.extend(pools::pooled_runs(200, 0.5, &[1, 2, 4], 25).await);
        }
        if wanted("scale") {
            // BENCH_SCALE_SIZES="JOBS/WORKERS,…" picks the sizes.
            let sizes: Vec<(usize, usize)> = std::env::var("BENCH_SCALE_SIZES")
                .unwrap_or_else(|_| "1000/100,10000/100,100000/1000".into())
                .split(',')
                .filter_map(|size| {
                    let (jobs, workers) = size.split_once('/')?;
                    Some((jobs.trim().parse().ok()?, workers.trim().parse().ok()?))
                })
                .collect();
            rows.extend(scale::scale(&sizes).await);
        }
        if wanted("soak") {
            let secs = std::env::var("BENCH_SOAK_SECS")
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(1800);
            rows.extend(scale::soak(1000, 20, Duration::from_secs(secs)).await);
        }
        if wanted("heartbeats") {
            rows.extend(rows::heartbeat_cpu(1000, 20, Duration::from_secs(30)).await);
        }
    });
    print_table(&rows);
}
