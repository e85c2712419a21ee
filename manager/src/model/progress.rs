//! A running job's progress: kept in memory for the view, never stored.

use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::event::JobProgress;

use super::{Changes, Model};

impl Model {
    /// Records `progress` on the job it is about (for a pooled mirror, the one this member
    /// runs), if that job is running that run; anything else is stale and dropped.
    pub(super) fn apply_progress(
        &mut self,
        worker: &WorkerId,
        progress: &JobProgress,
        changes: &mut Changes,
    ) {
        let own = (progress.mirror.clone(), worker.clone());
        let key = if self.jobs.contains_key(&own) {
            Some(own)
        } else {
            self.pool_jobs
                .keys()
                .find(|key| key.1 == progress.mirror && self.pool_member(key) == Some(worker))
                .map(|(pool, mirror)| (mirror.clone(), pool.as_worker_id()))
        };
        let Some(key) = key else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(&key)
            && job.status.is_running()
            && job.run_id == Some(progress.run_id)
        {
            job.progress = Some(progress.clone());
            changes.progressed.insert(key);
        }
    }
}
