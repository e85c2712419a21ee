//! Maintenance: what the operator has taken out of the schedule, and the sets each worker is
//! told about.
//!
//! While a job is covered, its schedule starts nothing (runs going on finish; an operator's
//! `start` still runs), and alerts about it are muted. A worker learns what of it is covered
//! from a `maintenance` command after each change and from every `welcome`; each set carries
//! a generation, so a late copy cannot undo a newer change. Pooled mirrors are scheduled
//! here: the pool scheduler hands out none that is covered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::maintenance::{MaintenanceEntry, Scope};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::wire::command::MaintenanceSet;

use super::{Changes, JobKey, Model};

/// One maintenance: the operator's message and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub message: String,
    pub since: GoTime,
}

/// Every maintenance in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintenance {
    /// Grows with every change: see [`MaintenanceSet::generation`].
    pub generation: u64,
    pub windows: BTreeMap<Scope, Window>,
}

impl Maintenance {
    /// The narrowest maintenance covering a job, if any.
    pub fn of_job(&self, (mirror, worker): &JobKey) -> Option<(&Scope, &Window)> {
        self.windows
            .iter()
            .rev()
            .find(|(scope, _)| scope.covers(worker, mirror))
    }

    /// The maintenance covering the whole of a worker (its own, or the cluster's).
    pub fn of_worker(&self, worker: &WorkerId) -> Option<&Window> {
        self.windows
            .iter()
            .rev()
            .find(|(scope, _)| scope.covers_worker(worker))
            .map(|(_, window)| window)
    }

    pub fn cluster(&self) -> Option<&Window> {
        self.windows.get(&Scope::Cluster)
    }

    /// What `worker` is told.
    pub fn set_for(&self, worker: &WorkerId) -> MaintenanceSet {
        let all = self.of_worker(worker).is_some();
        // In order, each once (a mirror can be covered both everywhere and here).
        let mirrors: std::collections::BTreeSet<&MirrorName> = self
            .windows
            .keys()
            .filter(|_| !all)
            .filter_map(|scope| match scope {
                Scope::Mirror(mirror) => Some(mirror),
                Scope::Job(owner, mirror) if owner == worker => Some(mirror),
                _ => None,
            })
            .collect();
        let mirrors = mirrors.into_iter().cloned().collect();
        MaintenanceSet {
            generation: self.generation,
            all,
            mirrors,
        }
    }

    /// `GET /maintenance`: widest first.
    pub fn entries(&self) -> Vec<MaintenanceEntry> {
        self.windows
            .iter()
            .map(|(scope, window)| MaintenanceEntry::new(scope, &window.message, window.since))
            .collect()
    }
}

impl Model {
    /// Whether `scope` names something the manager knows (a worker or pool, a mirror, a job).
    fn knows(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Cluster => true,
            Scope::Worker(worker) => self.workers.contains_key(worker) || self.is_pool(worker),
            Scope::Mirror(mirror) => self.jobs.keys().any(|(name, _)| name == mirror),
            Scope::Job(worker, mirror) => self.jobs.contains_key(&(mirror.clone(), worker.clone())),
        }
    }

    /// Puts `scope` in maintenance (again: the message is replaced, the start kept). False if
    /// it names nothing known.
    pub fn maintenance_on(
        &mut self,
        scope: &Scope,
        message: &str,
        now: GoTime,
        changes: &mut Changes,
    ) -> bool {
        if !self.knows(scope) {
            return false;
        }
        let before = self.maintenance_sets();
        let window = self
            .maintenance
            .windows
            .entry(scope.clone())
            .or_insert_with(|| Window {
                message: String::new(),
                since: now,
            });
        message.clone_into(&mut window.message);
        self.maintenance_changed(before, now, changes);
        true
    }

    /// Ends the maintenance of `scope`. False if it was not in maintenance.
    pub fn maintenance_off(&mut self, scope: &Scope, now: GoTime, changes: &mut Changes) -> bool {
        let before = self.maintenance_sets();
        if self.maintenance.windows.remove(scope).is_none() {
            return false;
        }
        self.maintenance_changed(before, now, changes);
        true
    }

    /// A removed worker's maintenance goes with it.
    pub(super) fn forget_maintenance_of(&mut self, worker: &WorkerId, changes: &mut Changes) {
        let before = self.maintenance.windows.len();
        self.maintenance
            .windows
            .retain(|scope, _| scope.worker() != Some(worker));
        if self.maintenance.windows.len() != before {
            changes.maintenance = true;
        }
    }

    /// Every worker's set (pools take no sets: their mirrors are scheduled here).
    fn maintenance_sets(&self) -> BTreeMap<WorkerId, MaintenanceSet> {
        self.workers
            .keys()
            .map(|worker| (worker.clone(), self.maintenance.set_for(worker)))
            .collect()
    }

    /// A new generation; the workers whose set changed are told.
    fn maintenance_changed(
        &mut self,
        before: BTreeMap<WorkerId, MaintenanceSet>,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let clock = u64::try_from(now.as_datetime().timestamp_millis()).unwrap_or(0);
        self.maintenance.generation = (self.maintenance.generation + 1).max(clock);
        changes.maintenance = true;
        for (worker, set) in self.maintenance_sets() {
            let same = before
                .get(&worker)
                .is_some_and(|old| old.all == set.all && old.mirrors == set.mirrors);
            if !same {
                changes.maintenance_sets.push((worker, set));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{JobRecord, WorkerRecord};

    fn w(name: &str) -> WorkerId {
        WorkerId::new(name).unwrap()
    }

    fn m(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    fn at(text: &str) -> GoTime {
        GoTime::parse_rfc3339(text).unwrap()
    }

    /// w1 has debian and pypi, w2 has debian.
    fn model() -> Model {
        let mut model = Model::default();
        for (worker, mirrors) in [("w1", &["debian", "pypi"][..]), ("w2", &["debian"][..])] {
            model
                .workers
                .insert(w(worker), WorkerRecord::new(GoTime::ZERO));
            for mirror in mirrors {
                model
                    .jobs
                    .insert((m(mirror), w(worker)), JobRecord::default());
            }
        }
        model
    }

    fn told(changes: &Changes) -> Vec<(&str, bool, Vec<&str>)> {
        changes
            .maintenance_sets
            .iter()
            .map(|(worker, set)| {
                let mirrors = set.mirrors.iter().map(MirrorName::as_str).collect();
                (worker.as_str(), set.all, mirrors)
            })
            .collect()
    }

    #[test]
    fn each_scope_tells_the_workers_it_changes_and_nothing_unknown_is_taken() {
        let mut model = model();
        let now = at("2026-12-02T10:00:00Z");
        let mut changes = Changes::default();
        let job = Scope::Job(w("w1"), m("pypi"));
        assert!(model.maintenance_on(&job, "disk swap", now, &mut changes));
        assert_eq!(told(&changes), [("w1", false, vec!["pypi"])]);
        assert!(changes.maintenance && !changes.is_empty());
        let first = model.maintenance.generation;
        assert!(first >= 1_764_669_600_000, "at least the clock in ms");

        let mut changes = Changes::default();
        assert!(model.maintenance_on(&Scope::Mirror(m("debian")), "", now, &mut changes));
        assert_eq!(
            told(&changes),
            [
                ("w1", false, vec!["debian", "pypi"]),
                ("w2", false, vec!["debian"])
            ]
        );
        assert!(model.maintenance.generation > first);

        let mut changes = Changes::default();
        assert!(model.maintenance_on(&Scope::Cluster, "upgrade", now, &mut changes));
        assert_eq!(told(&changes), [("w1", true, vec![]), ("w2", true, vec![])]);
        // The narrowest covering maintenance is the one a job shows.
        let (scope, window) = model.maintenance.of_job(&(m("pypi"), w("w1"))).unwrap();
        assert_eq!((scope, window.message.as_str()), (&job, "disk swap"));
        assert_eq!(
            model.maintenance.of_worker(&w("w2")).unwrap().message,
            "upgrade"
        );
        // Again: the message is replaced, the start kept, nobody told anything new.
        let later = at("2026-12-02T11:00:00Z");
        let mut changes = Changes::default();
        assert!(model.maintenance_on(&Scope::Cluster, "upgrade, day 2", later, &mut changes));
        assert!(told(&changes).is_empty());
        let cluster = model.maintenance.cluster().unwrap();
        assert_eq!(
            (cluster.message.as_str(), cluster.since),
            ("upgrade, day 2", now)
        );

        let mut changes = Changes::default();
        assert!(!model.maintenance_on(&Scope::Worker(w("w9")), "", now, &mut changes));
        assert!(!model.maintenance_on(&Scope::Mirror(m("arch")), "", now, &mut changes));
        assert!(!model.maintenance_on(&Scope::Job(w("w2"), m("pypi")), "", now, &mut changes));
        assert!(changes.is_empty(), "nothing unknown is recorded");

        let mut changes = Changes::default();
        assert!(model.maintenance_off(&Scope::Cluster, now, &mut changes));
        assert_eq!(
            told(&changes),
            [
                ("w1", false, vec!["debian", "pypi"]),
                ("w2", false, vec!["debian"])
            ]
        );
        assert!(!model.maintenance_off(&Scope::Worker(w("w1")), now, &mut changes));
        // The welcome carries the set.
        let welcome = model.welcome(&w("w2"), [&m("debian")]);
        let set = welcome.maintenance.unwrap();
        assert_eq!(set.generation, model.maintenance.generation);
        assert_eq!(set.mirrors, [m("debian")]);
        let entries = model.maintenance.entries();
        let kinds: Vec<&str> = entries.iter().map(|entry| entry.scope.as_str()).collect();
        assert_eq!(kinds, ["mirror", "job"], "widest first");
    }

    #[test]
    fn a_removed_workers_maintenance_goes_with_it() {
        let mut model = model();
        let now = at("2026-12-02T10:00:00Z");
        let mut changes = Changes::default();
        model.maintenance_on(&Scope::Worker(w("w2")), "", now, &mut changes);
        model.maintenance_on(&Scope::Job(w("w2"), m("debian")), "", now, &mut changes);
        model.maintenance_on(&Scope::Mirror(m("debian")), "", now, &mut changes);
        let mut changes = Changes::default();
        assert!(model.remove_worker(&w("w2"), &mut changes));
        assert!(changes.maintenance);
        let left: Vec<&Scope> = model.maintenance.windows.keys().collect();
        assert_eq!(left, [&Scope::Mirror(m("debian"))]);
    }
}
