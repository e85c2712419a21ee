//! What the API and `/metrics` say about pools: members and whether they are online, free
//! slots, runs waiting in the queue, and members whose definitions differ.

use std::collections::BTreeSet;

use tunasync_shared::compat::{DifferingDefinition, PoolMemberStatus, PoolStatus, WorkerStatus};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{PoolName, WorkerId};

use crate::model::Model;
use crate::records::PoolRunState;

/// One pool's state, read from the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    pub pool: PoolName,
    pub status: PoolStatus,
    pub last_online: GoTime,
    pub last_register: GoTime,
}

/// Every pool the model knows, by name; `now` ages the queued runs.
pub fn summaries(model: &Model, offline: &BTreeSet<WorkerId>, now: GoTime) -> Vec<PoolSummary> {
    let online = |worker: &WorkerId| !offline.contains(worker);
    let pools: BTreeSet<&PoolName> = model.pool_jobs.keys().map(|(pool, _)| pool).collect();
    pools
        .into_iter()
        .map(|pool| {
            let mut last_online = GoTime::ZERO;
            let mut last_register = GoTime::ZERO;
            let members: Vec<PoolMemberStatus> = model
                .pool_members(pool)
                .into_iter()
                .map(|member| {
                    let record = model.workers.get(&member);
                    if let Some(record) = record {
                        if record.last_online.as_datetime() > last_online.as_datetime() {
                            last_online = record.last_online;
                        }
                        if record.last_register.as_datetime() > last_register.as_datetime() {
                            last_register = record.last_register;
                        }
                    }
                    PoolMemberStatus {
                        online: online(&member),
                        free_slots: record.and_then(|record| record.free_slots),
                        id: member.to_string(),
                    }
                })
                .collect();
            let free_slots = members
                .iter()
                .filter(|member| member.online)
                .filter_map(|member| member.free_slots)
                .sum();
            let mut queued_runs = 0;
            let mut oldest: Option<GoTime> = None;
            let mut differing = Vec::new();
            for ((job_pool, mirror), job) in &model.pool_jobs {
                if job_pool != pool {
                    continue;
                }
                if let PoolRunState::Queued { since, .. } = &job.run {
                    queued_runs += 1;
                    if oldest.is_none_or(|oldest| since.as_datetime() < oldest.as_datetime()) {
                        oldest = Some(*since);
                    }
                }
                let key = (pool.clone(), mirror.clone());
                if let Some(consensus) = model.pool_consensus(&key, &online) {
                    differing.extend(consensus.differing.into_iter().map(
                        |(worker, fingerprint)| DifferingDefinition {
                            mirror: mirror.to_string(),
                            worker: worker.to_string(),
                            fingerprint,
                            pool_fingerprint: consensus.definition.fingerprint.clone(),
                        },
                    ));
                }
            }
            PoolSummary {
                pool: pool.clone(),
                status: PoolStatus {
                    pool: true,
                    members,
                    free_slots,
                    queued_runs,
                    oldest_queued_secs: oldest.map(|since| {
                        (now.as_datetime().to_utc() - since.as_datetime().to_utc())
                            .num_seconds()
                            .max(0)
                    }),
                    differing,
                },
                last_online,
                last_register,
            }
        })
        .collect()
}

impl PoolSummary {
    /// Its entry in `GET /workers`.
    pub fn to_worker_status(&self) -> WorkerStatus {
        WorkerStatus {
            id: self.pool.to_string(),
            url: String::new(),
            token: "REDACTED".to_owned(),
            last_online: self.last_online,
            last_register: self.last_register,
            online: Some(self.status.members.iter().any(|member| member.online)),
            pool: Some(self.status.clone()),
            maintenance: None,
            legacy: None,
        }
    }
}
