//! `[global.per_upstream_concurrent]`: at most N runs against one upstream host at once,
//! across the worker's own mirrors (a pool's runs are limited across the pool by the
//! manager). A run waits for its host's turn before it asks for a slot, so a waiting run
//! holds no slot another host's run could use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
pub use tunasync_shared::upstream::host_of;

#[derive(Clone, Default)]
pub struct UpstreamLimits {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    limits: BTreeMap<String, usize>,
    /// One per limited host; a reload that changes a host's limit makes a new one (runs
    /// holding the old one's permits finish under it).
    semaphores: HashMap<String, Arc<Semaphore>>,
}

impl UpstreamLimits {
    pub fn new(limits: &BTreeMap<String, usize>) -> UpstreamLimits {
        let limiter = UpstreamLimits::default();
        limiter.set_limits(limits);
        limiter
    }

    /// The limits of a (re)loaded config, by host (any case).
    pub fn set_limits(&self, limits: &BTreeMap<String, usize>) {
        let limits: BTreeMap<String, usize> = limits
            .iter()
            .map(|(host, limit)| (host.to_ascii_lowercase(), *limit))
            .collect();
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.limits == limits {
            return;
        }
        inner.semaphores = limits
            .iter()
            .map(|(host, limit)| (host.clone(), Arc::new(Semaphore::new(*limit))))
            .collect();
        inner.limits = limits;
    }

    /// Waits for `upstream`'s host to have room; `None` when it has no limit.
    pub async fn acquire(&self, upstream: &str) -> Option<OwnedSemaphorePermit> {
        let host = host_of(upstream)?;
        let semaphore = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .semaphores
            .get(&host)?
            .clone();
        semaphore.acquire_owned().await.ok()
    }

    /// The limit of `upstream`'s host, if it has one.
    pub fn limit_of(&self, upstream: &str) -> Option<usize> {
        let host = host_of(upstream)?;
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .limits
            .get(&host)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn at_most_the_limit_per_host() {
        let limits =
            UpstreamLimits::new(&[("RSYNC.example.org".to_owned(), 2)].into_iter().collect());
        let a = limits.acquire("rsync://rsync.example.org/a/").await;
        let b = limits.acquire("rsync://rsync.example.org/b/").await;
        assert!(a.is_some() && b.is_some());
        assert!(
            limits
                .acquire("rsync://other.example.org/c/")
                .await
                .is_none(),
            "no limit"
        );
        let third = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("rsync://rsync.example.org/c/"),
        )
        .await;
        assert!(third.is_err(), "a third waits");
        drop(a);
        let third = tokio::time::timeout(
            Duration::from_secs(5),
            limits.acquire("rsync://rsync.example.org/c/"),
        )
        .await;
        assert!(matches!(third, Ok(Some(_))));
        assert_eq!(limits.limit_of("rsync://rsync.example.org/x/"), Some(2));
    }
}
