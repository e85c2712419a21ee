//! What the API reads: a copy of the committed model, plus the rendered `GET /jobs` bodies.
//!
//! **Invariant:** only the state actor writes the view, and only after the store committed;
//! API handlers only read. The `GET /jobs` body (and its gzip) is rendered at most once per
//! change, on the first read after it, so a busy status page costs one memcpy per request.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::body::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tunasync_shared::compat::{MirrorStatus, WebMirrorStatus, WorkerStatus};
use tunasync_shared::names::{MirrorName, WorkerId};

use crate::model::Model;

#[derive(Default)]
pub struct View {
    inner: RwLock<ViewState>,
    /// Events applied and committed since start (for benchmarks and metrics).
    events_applied: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct ViewState {
    model: Model,
    offline: BTreeSet<WorkerId>,
    jobs_json: Option<Bytes>,
    jobs_gzip: Option<Bytes>,
}

impl View {
    pub fn new(model: Model) -> Arc<View> {
        Arc::new(View {
            inner: RwLock::new(ViewState {
                model,
                ..ViewState::default()
            }),
            events_applied: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn count_applied(&self, n_events: usize) {
        self.events_applied
            .fetch_add(n_events as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events applied and committed since the manager started.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read(&self) -> RwLockReadGuard<'_, ViewState> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ViewState> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces what readers see (called by the state actor after a commit).
    pub(crate) fn update(&self, change: impl FnOnce(&mut Model, &mut BTreeSet<WorkerId>)) {
        let mut state = self.write();
        let ViewState { model, offline, .. } = &mut *state;
        change(model, offline);
        state.jobs_json = None;
        state.jobs_gzip = None;
    }

    /// The `GET /jobs` body: tunasync.json, sorted by name then worker.
    pub fn jobs_json(&self) -> Bytes {
        if let Some(body) = &self.read().jobs_json {
            return body.clone();
        }
        let mut state = self.write();
        if let Some(body) = &state.jobs_json {
            return body.clone();
        }
        let body = Bytes::from(render_jobs(&state.model, &state.offline));
        state.jobs_json = Some(body.clone());
        body
    }

    /// The same body, gzip-compressed.
    pub fn jobs_gzip(&self) -> Bytes {
        if let Some(body) = &self.read().jobs_gzip {
            return body.clone();
        }
        let json = self.jobs_json();
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::new(6));
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&json);
        let gzip = Bytes::from(encoder.finish().unwrap_or_default());
        let mut state = self.write();
        state.jobs_gzip = Some(gzip.clone());
        gzip
    }

    /// `GET /workers`.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        let state = self.read();
        state
            .model
            .workers
            .iter()
            .map(|(id, record)| record.to_status(id, !state.offline.contains(id)))
            .collect()
    }

    pub fn has_worker(&self, worker: &WorkerId) -> bool {
        self.read().model.workers.contains_key(worker)
    }

    /// `GET /workers/{id}/jobs`: `None` for an unknown worker.
    pub fn worker_jobs(&self, worker: &WorkerId) -> Option<Vec<MirrorStatus>> {
        let state = self.read();
        if !state.model.workers.contains_key(worker) {
            return None;
        }
        let online = !state.offline.contains(worker);
        Some(
            state
                .model
                .jobs
                .iter()
                .filter(|((_, owner), _)| owner == worker)
                .map(|((mirror, owner), job)| job.to_status(mirror, owner, online))
                .collect(),
        )
    }

    /// One job as tunasync shows it, if it exists.
    pub fn job(&self, worker: &WorkerId, mirror: &MirrorName) -> Option<MirrorStatus> {
        let state = self.read();
        let online = !state.offline.contains(worker);
        state
            .model
            .jobs
            .get(&(mirror.clone(), worker.clone()))
            .map(|job| job.to_status(mirror, worker, online))
    }

    /// `GET /metrics`: the Prometheus text of the current state.
    pub fn metrics(&self) -> String {
        let state = self.read();
        crate::metrics::render(
            &state.model,
            |worker| !state.offline.contains(worker),
            self.events_applied(),
        )
    }
}

fn render_jobs(model: &Model, offline: &BTreeSet<WorkerId>) -> Vec<u8> {
    let entries: Vec<WebMirrorStatus> = model
        .jobs
        .iter()
        .map(|((mirror, worker), job)| {
            WebMirrorStatus::from(&job.to_status(mirror, worker, !offline.contains(worker)))
        })
        .collect();
    serde_json::to_vec(&entries).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{JobRecord, WorkerRecord};
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::status::SyncStatus;

    #[test]
    fn jobs_are_sorted_by_name_then_worker_and_cached_until_a_change() {
        let mut model = Model::default();
        for worker in ["w2", "w1"] {
            let id = WorkerId::new(worker).unwrap();
            model
                .workers
                .insert(id.clone(), WorkerRecord::new(GoTime::ZERO));
            for mirror in ["zeta", "alpha"] {
                model.jobs.insert(
                    (MirrorName::new(mirror).unwrap(), id.clone()),
                    JobRecord::default(),
                );
            }
        }
        let view = View::new(model);
        let body = view.jobs_json();
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        let names: Vec<&str> = entries
            .iter()
            .map(|entry| entry["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "alpha", "zeta", "zeta"]);
        assert!(
            std::ptr::eq(view.jobs_json().as_ptr(), body.as_ptr()),
            "served from the cache"
        );

        let gzip = view.jobs_gzip();
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut decoded)
            .unwrap();
        assert_eq!(decoded, body);

        view.update(|model, offline| {
            let w1 = WorkerId::new("w1").unwrap();
            for ((_, worker), job) in model.jobs.iter_mut() {
                if worker == &w1 {
                    job.status = SyncStatus::Syncing;
                }
            }
            offline.insert(w1);
        });
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&view.jobs_json()).unwrap();
        let failed = entries
            .iter()
            .filter(|entry| entry["status"] == "failed")
            .count();
        assert_eq!(failed, 2, "the offline worker's running jobs show failed");
    }
}
