//! Worker events the fault tests publish straight to the broker.

use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{Event, JobStatus};
use tunasync_shared::wire::{EventEnvelope, SequenceSource};

/// A successful run `run_id` of `mirror` that transferred 1 byte (so each job's
/// `total_transferred_bytes` counts the events of it the store applied), with `error_msg`
/// as ballast.
pub fn successful_run(
    worker: &WorkerId,
    mirror: &MirrorName,
    seq: &SequenceSource,
    run_id: uuid::Uuid,
    error_msg: String,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::Status(JobStatus {
            mirror: mirror.clone(),
            status: SyncStatus::Success,
            run_id,
            attempt: 1,
            at: GoTime::now_local(),
            upstream: "rsync://upstream.example.org/x/".into(),
            is_master: true,
            size: None,
            error_msg,
            pooled: None,
            transferred_bytes: Some(1),
            ends_run: true,
        }),
    )
}
