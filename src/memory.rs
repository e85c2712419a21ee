//! Memory hygiene for the long-running daemons.

/// How often freed heap memory is handed back to the kernel.
#[cfg(target_env = "gnu")]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Limits glibc's malloc arenas and periodically returns freed heap pages to the kernel.
///
/// A daemon that has just rendered a large `GET /jobs` body or applied a burst of events
/// holds on to the freed pages otherwise; on an idle mirror host that is memory other
/// services could use (measured with `scripts/bench.sh rss`).
#[cfg(target_env = "gnu")]
pub fn start_trimming() {
    // SAFETY: mallopt and malloc_trim only adjust the allocator; they take no pointers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        loop {
            tick.tick().await;
            // Trimming a large heap takes a while (tens of milliseconds with 100,000 jobs):
            // not on a thread that runs the daemon's tasks.
            let trimmed = tokio::task::spawn_blocking(|| {
                // SAFETY: as above.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
            let _ = trimmed.await;
        }
    });
}

/// musl's allocator returns freed pages by itself; there is nothing to tune.
#[cfg(not(target_env = "gnu"))]
pub fn start_trimming() {}
