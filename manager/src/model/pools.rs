//! Pooled mirrors: a mirror that several workers (a pool's members) define the same way runs
//! on whichever member is free. The manager schedules it with the rules every worker applies
//! (`tunasync_shared::schedule`), hands each due run to the pool's queue, lets one member
//! run it (claim → grant), and takes the run back when that member goes offline.
//!
//! A pooled mirror shows as one job whose worker is the pool's name. Every hand-out takes a
//! new lease; reports carrying an older lease are ignored, so a member that was cut off and
//! replaced cannot report over the run that replaced it.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, PoolName, WorkerId};
use tunasync_shared::schedule::Rules;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{Hello, JobStatus};
use tunasync_shared::wire::pool::{Claim, Grant, PoolRun, PooledRun};
use uuid::Uuid;

use super::{Changes, JobKey, Model};

/// A pooled mirror's priority when its members set none (the workers' default).
const DEFAULT_PRIORITY: u8 = 50;
use crate::records::{JobRecord, OFFLINE_ERROR, PoolJobRecord, PoolRunState, PooledDefinition};

#[cfg(test)]
mod tests;

/// A pooled mirror: its pool and its name.
pub type PoolKey = (PoolName, MirrorName);

/// How long a granted run may go without its first report before it is handed out again.
pub const GRANT_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// How long a run refused to a member whose definition differs waits before it is
/// published again (for another member to take).
pub const REPUBLISH_DELAY: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
/// A run handed to the publisher is published again if the broker has not confirmed it
/// this long after (a duplicate is harmless: only one claim is granted).
pub const PUBLISH_RETRY: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// A pool run to publish, and the retry deadline its publication carries: the broker's
/// confirm clears the retry only while it is still that one (a refused claim may have
/// asked for an earlier publication meanwhile, which a late confirm must not cancel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub run: PoolRun,
    pub retry_at: GoTime,
}

/// The definition a pooled mirror runs, and who agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consensus {
    pub definition: PooledDefinition,
    pub agreeing: Vec<WorkerId>,
    /// Members whose definition differs, with their fingerprints.
    pub differing: Vec<(WorkerId, String)>,
}

fn display_key(key: &PoolKey) -> JobKey {
    (key.1.clone(), key.0.as_worker_id())
}

fn at_plus(time: GoTime, delta: chrono::TimeDelta) -> GoTime {
    GoTime::from(time.as_datetime().to_utc() + delta)
}

fn is_due(due: GoTime, now: GoTime) -> bool {
    due.is_zero() || due.as_datetime() <= now.as_datetime()
}

impl Model {
    /// Records the pooled mirrors a member's `hello` lists, and creates the pooled mirrors
    /// (and their rows in `GET /jobs`) that are new.
    pub(super) fn apply_pool_membership(
        &mut self,
        worker: &WorkerId,
        hello: &Hello,
        changes: &mut Changes,
    ) {
        let mut pools: BTreeMap<PoolName, BTreeMap<MirrorName, PooledDefinition>> = BTreeMap::new();
        for snapshot in &hello.jobs {
            let (Some(pool), Some(fingerprint)) = (&snapshot.pool, &snapshot.fingerprint) else {
                continue;
            };
            pools.entry(pool.clone()).or_default().insert(
                snapshot.mirror.clone(),
                PooledDefinition {
                    fingerprint: fingerprint.clone(),
                    interval_minutes: snapshot.interval_minutes,
                    cron: snapshot.cron.clone(),
                    jitter_secs: snapshot.jitter_secs,
                    upstream: snapshot.upstream.clone(),
                    is_master: snapshot.is_master,
                    url: snapshot.url.clone().unwrap_or_default(),
                    desc: snapshot.desc.clone().unwrap_or_default(),
                    extras: snapshot.rules.clone(),
                },
            );
        }
        for (pool, mirrors) in &pools {
            for (mirror, definition) in mirrors {
                let key = (pool.clone(), mirror.clone());
                if !self.pool_jobs.contains_key(&key) {
                    info!(%pool, %mirror, member = %worker, "new pooled mirror");
                    self.pool_jobs.insert(key.clone(), PoolJobRecord::default());
                    changes.pool_jobs.insert(key.clone());
                }
                let shown = display_key(&key);
                if !self.jobs.contains_key(&shown) {
                    self.jobs.insert(
                        shown.clone(),
                        JobRecord {
                            upstream: definition.upstream.clone(),
                            is_master: definition.is_master,
                            ..JobRecord::default()
                        },
                    );
                    changes.jobs.insert(shown.clone());
                }
                if let Some(job) = self.jobs.get_mut(&shown)
                    && (job.url != definition.url || job.desc != definition.desc)
                {
                    job.url.clone_from(&definition.url);
                    job.desc.clone_from(&definition.desc);
                    changes.jobs.insert(shown);
                }
            }
        }
        for (pool, mirrors) in &pools {
            for (mirror, definition) in mirrors {
                let others: BTreeSet<&str> = self
                    .workers
                    .iter()
                    .filter(|(other, _)| *other != worker)
                    .filter_map(|(_, record)| record.pooled(pool, mirror))
                    .map(|other| other.fingerprint.as_str())
                    .filter(|other| *other != definition.fingerprint)
                    .collect();
                if !others.is_empty() {
                    warn!(%pool, %mirror, member = %worker, fingerprint = %definition.fingerprint, ?others, "members define a pooled mirror differently: the pool runs what most online members have");
                }
            }
        }
        if let Some(record) = self.workers.get_mut(worker)
            && record.pools != pools
        {
            record.pools = pools;
            changes.workers.insert(worker.clone());
            self.remove_undefined_pooled_mirrors(changes);
        }
    }

    /// Removes the pooled mirrors no member defines any more (their row too), unless a run
    /// of theirs is granted or going on: those go once it is over and a member says hello.
    fn remove_undefined_pooled_mirrors(&mut self, changes: &mut Changes) {
        let defined: BTreeSet<(&PoolName, &MirrorName)> =
            self.workers
                .values()
                .flat_map(|record| {
                    record.pools.iter().flat_map(|(pool, mirrors)| {
                        mirrors.keys().map(move |mirror| (pool, mirror))
                    })
                })
                .collect();
        let gone: Vec<PoolKey> = self
            .pool_jobs
            .iter()
            .filter(|((pool, mirror), job)| {
                !defined.contains(&(pool, mirror))
                    && matches!(job.run, PoolRunState::Idle | PoolRunState::Queued { .. })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            info!(pool = %key.0, mirror = %key.1, "no member defines the pooled mirror any more: removed");
            self.pool_jobs.remove(&key);
            changes.pool_jobs.insert(key.clone());
            let shown = display_key(&key);
            if self.jobs.remove(&shown).is_some() {
                changes.removed_jobs.insert(shown);
            }
        }
    }

    /// The members of `pool` (whether or not online).
    pub fn pool_members(&self, pool: &PoolName) -> Vec<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, record)| record.pools.contains_key(pool))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What the online members that define the pooled mirror agree on: the definition most
    /// of them have (on a tie, the smallest fingerprint).
    pub fn pool_consensus(
        &self,
        key: &PoolKey,
        online: &dyn Fn(&WorkerId) -> bool,
    ) -> Option<Consensus> {
        let (pool, mirror) = key;
        let mut by_fingerprint: BTreeMap<&str, (Vec<WorkerId>, &PooledDefinition)> =
            BTreeMap::new();
        for (worker, record) in &self.workers {
            if !online(worker) {
                continue;
            }
            if let Some(definition) = record.pooled(pool, mirror) {
                by_fingerprint
                    .entry(definition.fingerprint.as_str())
                    .or_insert_with(|| (Vec::new(), definition))
                    .0
                    .push(worker.clone());
            }
        }
        let (chosen, (agreeing, definition)) = by_fingerprint
            .iter()
            .max_by(|(a_print, (a, _)), (b_print, (b, _))| {
                a.len().cmp(&b.len()).then_with(|| b_print.cmp(a_print))
            })
            .map(|(print, entry)| (*print, entry.clone()))?;
        let differing = by_fingerprint
            .iter()
            .filter(|(print, _)| **print != chosen)
            .flat_map(|(print, (members, _))| {
                members
                    .iter()
                    .map(|member| (member.clone(), (*print).to_owned()))
            })
            .collect();
        Some(Consensus {
            definition: definition.clone(),
            agreeing,
            differing,
        })
    }

    /// Hands out the pooled runs that are due, publishes again what waits to be, and takes
    /// back the runs of members that went offline (recorded failed, handed out again at
    /// once) or never started what they were granted. `now` is the manager's clock.
    ///
    /// Returns when the next tick has something to do (a run comes due, a publication is to
    /// be retried, a grant times out), if anything is known now; events that change a pooled
    /// mirror wake the ticker before that.
    pub fn pool_tick(
        &mut self,
        now: GoTime,
        online: &dyn Fn(&WorkerId) -> bool,
        changes: &mut Changes,
    ) -> Option<GoTime> {
        let mut next: Option<GoTime> = None;
        // What each pooled mirror's online members agree on, once per tick (hand-outs
        // change runs, not definitions).
        let mut consensuses: BTreeMap<PoolKey, Option<Consensus>> = self
            .pool_jobs
            .keys()
            .map(|key| (key.clone(), self.pool_consensus(key, online)))
            .collect();
        // Highest priority first, then the earliest due: the order of this tick's hand-outs
        // and publications, so members take the most important runs first.
        let mut keys: Vec<(std::cmp::Reverse<u8>, GoTime, PoolKey)> = self
            .pool_jobs
            .iter()
            .map(|(key, job)| {
                let priority = consensuses
                    .get(key)
                    .and_then(Option::as_ref)
                    .and_then(|consensus| consensus.definition.extras.priority)
                    .unwrap_or(DEFAULT_PRIORITY);
                (std::cmp::Reverse(priority), job.next_due, key.clone())
            })
            .collect();
        keys.sort_by(|a, b| (a.0, a.1.as_datetime(), &a.2).cmp(&(b.0, b.1.as_datetime(), &b.2)));
        let mut busy = self.busy_upstreams(&consensuses);
        let mut room = self.pool_room(online);
        for (_, _, key) in keys {
            let consensus = consensuses.remove(&key).flatten();
            // The pool's free slots (as its members last reported them) are taken by
            // runs already queued: more due runs wait, unless forced.
            let no_room = room.get(&key.0).is_some_and(|room| *room == 0);
            // The pool's runs against this mirror's upstream host, at their limit: not now.
            let upstream_full = consensus.as_ref().and_then(|consensus| {
                let limit = consensus.definition.extras.upstream_limit?;
                let host = tunasync_shared::upstream::host_of(&consensus.definition.upstream)?;
                let running = busy
                    .get(&(key.0.clone(), host.clone()))
                    .copied()
                    .unwrap_or(0);
                Some((host, running >= limit))
            });
            let shown = display_key(&key);
            let held = self.jobs.get(&shown).is_some_and(|job| job.hold.is_some());
            let maintained = self.maintenance.of_job(&shown).is_some();
            let Some(job) = self.pool_jobs.get_mut(&key) else {
                continue;
            };
            let lost = match &job.run {
                PoolRunState::Idle => {
                    // In maintenance only the operator's `start` hands a run out.
                    if !held
                        && (!maintained || job.started)
                        && is_due(job.next_due, now)
                        && !upstream_full.as_ref().is_some_and(|(_, full)| *full)
                        && (!no_room || job.force_next)
                        && let Some(consensus) = &consensus
                    {
                        if let Some((host, _)) = &upstream_full {
                            *busy.entry((key.0.clone(), host.clone())).or_default() += 1;
                        }
                        if let Some(room) = room.get_mut(&key.0) {
                            *room = room.saturating_sub(1);
                        }
                        job.lease += 1;
                        job.run = PoolRunState::Queued {
                            run_id: Uuid::new_v4(),
                            lease: job.lease,
                            fingerprint: consensus.definition.fingerprint.clone(),
                            force: std::mem::take(&mut job.force_next),
                            since: now,
                            publish_at: Some(now),
                            due: Some(if job.next_due.is_zero() {
                                now
                            } else {
                                job.next_due
                            }),
                        };
                        // The operator's start, if any, is this hand-out.
                        job.started = false;
                        changes.pool_jobs.insert(key.clone());
                    }
                    None
                }
                PoolRunState::Queued { .. } => None,
                PoolRunState::Granted { member, since, .. } => {
                    if !online(member) {
                        Some((member.clone(), OFFLINE_ERROR))
                    } else if now.as_datetime().to_utc() - since.as_datetime().to_utc()
                        > GRANT_TIMEOUT
                    {
                        Some((member.clone(), "the member did not start the run"))
                    } else {
                        None
                    }
                }
                PoolRunState::Running { member, .. } => {
                    (!online(member)).then(|| (member.clone(), OFFLINE_ERROR))
                }
            };
            if let Some((member, reason)) = lost {
                warn!(pool = %key.0, mirror = %key.1, %member, reason, "taking back a pooled run: handing it out again");
                // A granted run that never reported has no history entry yet: it gets one,
                // so the history shows which member lost it.
                let granted = match self.pool_jobs.get(&key).map(|job| &job.run) {
                    Some(PoolRunState::Granted {
                        lease,
                        run_id,
                        since,
                        ..
                    }) => Some((*lease, *run_id, *since)),
                    _ => None,
                };
                if let (Some((lease, run_id, since)), Some(record)) =
                    (granted, self.jobs.get_mut(&display_key(&key)))
                {
                    let shown = display_key(&key);
                    record.open_run(&shown, lease, run_id, since, changes);
                    if let Some(run) = &mut record.current_run {
                        run.record.member = Some(member.clone());
                    }
                }
                self.fail_pooled_run(&key, &member, reason, now, changes);
                if let Some(job) = self.pool_jobs.get_mut(&key) {
                    job.run = PoolRunState::Idle;
                    job.next_due = GoTime::ZERO;
                }
                // Handed out again in this same tick, to another member.
                if let (Some(job), Some(consensus)) = (self.pool_jobs.get_mut(&key), &consensus)
                    && !held
                {
                    job.lease += 1;
                    job.run = PoolRunState::Queued {
                        run_id: Uuid::new_v4(),
                        lease: job.lease,
                        fingerprint: consensus.definition.fingerprint.clone(),
                        force: false,
                        since: now,
                        publish_at: Some(now),
                        due: Some(now),
                    };
                }
                changes.pool_jobs.insert(key.clone());
            }
            // The members' definition changed while the run waited (a member joined or left):
            // it goes out again with the new one, and a claim of the old one is refused.
            if let (Some(job), Some(consensus)) = (self.pool_jobs.get_mut(&key), &consensus)
                && let PoolRunState::Queued {
                    lease,
                    fingerprint,
                    publish_at,
                    ..
                } = &mut job.run
                && *fingerprint != consensus.definition.fingerprint
            {
                info!(pool = %key.0, mirror = %key.1, from = %fingerprint, to = %consensus.definition.fingerprint, "the members' definition changed: the queued run goes out again with it");
                job.lease += 1;
                *lease = job.lease;
                fingerprint.clone_from(&consensus.definition.fingerprint);
                *publish_at = Some(now);
                changes.pool_jobs.insert(key.clone());
            }
            if let Some(job) = self.pool_jobs.get_mut(&key)
                && let PoolRunState::Queued {
                    run_id,
                    lease,
                    fingerprint,
                    force,
                    publish_at: Some(publish_at),
                    ..
                } = &mut job.run
                && is_due(*publish_at, now)
            {
                let retry_at = at_plus(now, PUBLISH_RETRY);
                changes.pool_runs.push(Publication {
                    run: PoolRun {
                        pool: key.0.clone(),
                        mirror: key.1.clone(),
                        run_id: *run_id,
                        lease: *lease,
                        fingerprint: fingerprint.clone(),
                        force: *force,
                    },
                    retry_at,
                });
                *publish_at = retry_at;
                changes.pool_jobs.insert(key.clone());
            }
            // A run held back by maintenance or its host's limit waits for a change (the end
            // of a maintenance or of a run wakes the scheduler), not for a time.
            let blocked = upstream_full.as_ref().is_some_and(|(_, full)| *full) || no_room;
            let wake = self.pool_jobs.get(&key).and_then(|job| match &job.run {
                PoolRunState::Idle => {
                    (!held && consensus.is_some() && !blocked && (!maintained || job.started))
                        .then_some(job.next_due)
                }
                PoolRunState::Queued { publish_at, .. } => *publish_at,
                PoolRunState::Granted { since, .. } => Some(at_plus(*since, GRANT_TIMEOUT)),
                PoolRunState::Running { .. } => None,
            });
            if let Some(wake) = wake.filter(|wake| !wake.is_zero())
                && next.is_none_or(|next| wake.as_datetime() < next.as_datetime())
            {
                next = Some(wake);
            }
        }
        next
    }

    /// The broker confirmed a publication of the run with `lease` made with `retry_at`: it
    /// is not published again, unless something asked for another publication since (a
    /// member's claim was refused).
    pub fn pool_run_published(
        &mut self,
        key: &PoolKey,
        lease: u64,
        retry_at: GoTime,
        changes: &mut Changes,
    ) {
        if let Some(job) = self.pool_jobs.get_mut(key)
            && let PoolRunState::Queued {
                lease: queued,
                publish_at,
                ..
            } = &mut job.run
            && *queued == lease
            && *publish_at == Some(retry_at)
        {
            *publish_at = None;
            changes.pool_jobs.insert(key.clone());
        }
    }

    /// A member asks to run a pool run it took off the queue.
    pub(super) fn apply_claim(
        &mut self,
        worker: &WorkerId,
        claim: &Claim,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let key = (claim.pool.clone(), claim.mirror.clone());
        let answer = |granted: bool, reason: String| Grant {
            pool: claim.pool.clone(),
            mirror: claim.mirror.clone(),
            run_id: claim.run_id,
            lease: claim.lease,
            granted,
            reason,
        };
        let Some(job) = self.pool_jobs.get_mut(&key) else {
            changes.grants.push((
                worker.clone(),
                answer(false, "no such pooled mirror".to_owned()),
            ));
            return;
        };
        let grant = match &mut job.run {
            PoolRunState::Queued {
                run_id,
                lease,
                fingerprint,
                publish_at,
                since,
                due,
                ..
            } if *lease == claim.lease && *run_id == claim.run_id => {
                if claim.fingerprint.as_deref() == Some(fingerprint.as_str()) {
                    let due = due.unwrap_or(*since).as_datetime().to_utc();
                    let waited = (now.as_datetime().to_utc() - due)
                        .to_std()
                        .unwrap_or_default();
                    changes.pool_waits.push(waited);
                    job.run = PoolRunState::Granted {
                        run_id: claim.run_id,
                        lease: claim.lease,
                        member: worker.clone(),
                        since: now,
                    };
                    answer(true, String::new())
                } else {
                    warn!(pool = %claim.pool, mirror = %claim.mirror, member = %worker, theirs = ?claim.fingerprint, scheduled = %fingerprint, "a member's definition of a pooled mirror differs: not its run");
                    *publish_at = Some(at_plus(now, REPUBLISH_DELAY));
                    answer(
                        false,
                        format!(
                            "this worker's definition of {} ({}) differs from the pool's ({fingerprint})",
                            claim.mirror,
                            claim.fingerprint.as_deref().unwrap_or("none")
                        ),
                    )
                }
            }
            _ => answer(
                false,
                format!("run {} is not the pooled mirror's current one", claim.lease),
            ),
        };
        changes.pool_jobs.insert(key);
        changes.grants.push((worker.clone(), grant));
    }

    /// A report of a pooled run: counts only from the member the current lease was granted
    /// to; the last one frees the mirror for its next run.
    pub(super) fn apply_pool_status(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        status: &JobStatus,
        pooled: &PooledRun,
        changes: &mut Changes,
    ) {
        let key = (pooled.pool.clone(), status.mirror.clone());
        let rules = if pooled.last {
            self.pooled_rules(worker, &key)
        } else {
            None
        };
        let Some(job) = self.pool_jobs.get_mut(&key) else {
            return;
        };
        let current = match &job.run {
            PoolRunState::Granted {
                run_id,
                lease,
                member,
                ..
            } => (*lease == pooled.lease && member == worker && *run_id == status.run_id)
                .then_some(0),
            PoolRunState::Running {
                run_id,
                lease,
                member,
                last_seq,
                ..
            } => (*lease == pooled.lease
                && member == worker
                && *run_id == status.run_id
                && seq > *last_seq)
                .then_some(*last_seq),
            PoolRunState::Idle | PoolRunState::Queued { .. } => None,
        };
        if current.is_none() {
            // A late copy, or a member whose run was given away: fenced off.
            return;
        }
        // This report is counted into the row's failures below: count it here too.
        let failed_runs = match status.status {
            SyncStatus::Failed => self
                .jobs
                .get(&display_key(&key))
                .map_or(0, |row| row.consecutive_failures)
                .saturating_add(1),
            _ => 0,
        };
        let next_due = pooled.last.then(|| {
            let ended = status.at.as_datetime().to_utc();
            rules.map_or(ended, |rules| {
                rules.jittered(rules.next_after_run(ended, failed_runs), &mut rand::rng())
            })
        });
        job.run = match next_due {
            Some(_) => PoolRunState::Idle,
            None => PoolRunState::Running {
                run_id: status.run_id,
                lease: pooled.lease,
                member: worker.clone(),
                since: match &job.run {
                    PoolRunState::Running { since, .. } => *since,
                    _ => status.at,
                },
                last_seq: seq,
            },
        };
        if let Some(next_due) = next_due {
            job.next_due = GoTime::from(next_due);
        }
        let lease = pooled.lease;
        changes.pool_jobs.insert(key.clone());
        let shown = display_key(&key);
        let record = self.jobs.entry(shown.clone()).or_default();
        record.record_status(&shown, lease, status, changes);
        if let Some(run) = &mut record.current_run
            && run.record.member.as_ref() != Some(worker)
        {
            run.record.member = Some(worker.clone());
            changes.runs.push((shown, run.clone()));
        }
    }

    /// The schedule rules of `member`'s run of a pooled mirror: its own definition's, or,
    /// when its `hello` is not in yet (its claim can overtake it), the ones the pool's
    /// members agree on, so that the mirror is not due again at once.
    fn pooled_rules(&self, member: &WorkerId, key: &PoolKey) -> Option<Rules> {
        match self
            .workers
            .get(member)
            .and_then(|record| record.pooled(&key.0, &key.1))
        {
            Some(definition) => Some(definition.rules()),
            None => self
                .pool_consensus(key, &|_| true)
                .map(|consensus| consensus.definition.rules()),
        }
    }

    /// Per pool whose online members all report their free slots: those slots less the
    /// runs queued for them (not claimed yet). Pools with a member that does not report
    /// are not limited.
    fn pool_room(&self, online: &dyn Fn(&WorkerId) -> bool) -> BTreeMap<PoolName, u32> {
        let mut room = BTreeMap::new();
        let pools: BTreeSet<&PoolName> = self.pool_jobs.keys().map(|(pool, _)| pool).collect();
        for pool in pools {
            let free: Option<u32> = self
                .pool_members(pool)
                .iter()
                .filter(|member| online(member))
                .map(|member| {
                    self.workers
                        .get(member)
                        .and_then(|record| record.free_slots)
                })
                .sum();
            let Some(free) = free else {
                continue;
            };
            let queued = self
                .pool_jobs
                .iter()
                .filter(|((owner, _), job)| {
                    owner == pool && matches!(job.run, PoolRunState::Queued { .. })
                })
                .count();
            room.insert(
                pool.clone(),
                free.saturating_sub(u32::try_from(queued).unwrap_or(u32::MAX)),
            );
        }
        room
    }

    /// The pool's runs handed out and not over (queued, granted, running), by pool and
    /// upstream host.
    fn busy_upstreams(
        &self,
        consensuses: &BTreeMap<PoolKey, Option<Consensus>>,
    ) -> BTreeMap<(PoolName, String), u32> {
        let mut busy = BTreeMap::new();
        for (key, job) in &self.pool_jobs {
            if job.run == PoolRunState::Idle {
                continue;
            }
            let host = consensuses
                .get(key)
                .and_then(Option::as_ref)
                .and_then(|consensus| {
                    tunasync_shared::upstream::host_of(&consensus.definition.upstream)
                });
            if let Some(host) = host {
                *busy.entry((key.0.clone(), host)).or_default() += 1;
            }
        }
        busy
    }

    /// `start` (`-f`: `force`) or `restart` addressed to the pool: the mirror is due now. A
    /// run already queued or going on stays (as tunasync ignores a start while a job runs).
    /// False if the pool has no such mirror.
    pub fn pool_start(
        &mut self,
        key: &PoolKey,
        force: bool,
        now: GoTime,
        changes: &mut Changes,
    ) -> bool {
        let Some(job) = self.pool_jobs.get_mut(key) else {
            return false;
        };
        if job.run == PoolRunState::Idle {
            job.next_due = now;
            job.force_next = force;
            job.started = true;
            changes.pool_jobs.insert(key.clone());
        }
        true
    }

    /// `stop`, `disable` or `restart` addressed to the pool: the current run (queued, granted
    /// or running) is over, and its lease with it; the member that had it is returned, to be
    /// told to stop. False if the pool has no such mirror.
    pub fn pool_interrupt(&mut self, key: &PoolKey, now: GoTime, changes: &mut Changes) -> bool {
        let Some(job) = self.pool_jobs.get_mut(key) else {
            return false;
        };
        if job.run != PoolRunState::Idle {
            job.run = PoolRunState::Idle;
            job.lease += 1;
            changes.pool_jobs.insert(key.clone());
            let shown = display_key(key);
            if let Some(record) = self.jobs.get_mut(&shown) {
                record.close_run(
                    &shown,
                    SyncStatus::Failed,
                    now,
                    super::jobs::STOPPED_ERROR,
                    changes,
                );
            }
        }
        true
    }

    /// The member a pooled mirror's current run was granted to, if any.
    pub fn pool_member(&self, key: &PoolKey) -> Option<&WorkerId> {
        match &self.pool_jobs.get(key)?.run {
            PoolRunState::Granted { member, .. } | PoolRunState::Running { member, .. } => {
                Some(member)
            }
            PoolRunState::Idle | PoolRunState::Queued { .. } => None,
        }
    }

    /// Whether `name` is a pool (a pool's name where a worker id is expected).
    pub fn is_pool(&self, name: &WorkerId) -> bool {
        self.pool_jobs
            .keys()
            .any(|(pool, _)| pool.as_str() == name.as_str())
    }

    /// Ends a pooled run that its member lost: the job shows failed with `reason`.
    fn fail_pooled_run(
        &mut self,
        key: &PoolKey,
        member: &WorkerId,
        reason: &str,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let shown = display_key(key);
        if let Some(record) = self.jobs.get_mut(&shown) {
            if record.hold.is_none() {
                record.status = SyncStatus::Failed;
            }
            record.last_ended = now;
            reason.clone_into(&mut record.error_msg);
            record.close_run(&shown, SyncStatus::Failed, now, reason, changes);
            changes.jobs.insert(shown);
        }
        info!(pool = %key.0, mirror = %key.1, %member, reason, "pooled run failed");
    }
}
