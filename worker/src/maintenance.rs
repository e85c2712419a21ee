//! The worker's side of maintenance: which of its mirrors the manager says are in
//! maintenance, and the runs that came due meanwhile.
//!
//! A mirror in maintenance starts nothing on its schedule: when its run comes due it is
//! parked instead, and started when the maintenance ends (a run going on finishes; an
//! operator's `start` still runs). The worker keeps the newest set by generation, so a late
//! copy (a `welcome` and a `maintenance` that crossed) changes nothing. Owned by the main
//! loop.

use std::collections::BTreeSet;

use tunasync_shared::names::MirrorName;
use tunasync_shared::wire::command::MaintenanceSet;

#[derive(Debug, Default)]
pub struct Maintenance {
    set: MaintenanceSet,
    /// Due while in maintenance, not started.
    parked: BTreeSet<MirrorName>,
}

impl Maintenance {
    /// Whether `mirror`'s schedule may not start it.
    pub fn holds(&self, mirror: &MirrorName) -> bool {
        self.set.holds(mirror)
    }

    /// Whether the whole worker is in maintenance (a pool member takes no pooled runs).
    pub fn whole(&self) -> bool {
        self.set.all
    }

    /// Notes a run that came due in maintenance.
    pub fn park(&mut self, mirror: MirrorName) {
        self.parked.insert(mirror);
    }

    /// A parked run started otherwise (the operator's `start`), or its job is gone.
    pub fn unpark(&mut self, mirror: &MirrorName) {
        self.parked.remove(mirror);
    }

    /// Takes `set` unless it is older than the one held; returns the parked mirrors it
    /// releases (to start now), or `None` for an older set.
    pub fn update(&mut self, set: MaintenanceSet) -> Option<Vec<MirrorName>> {
        if set.generation < self.set.generation {
            return None;
        }
        self.set = set;
        let released: Vec<MirrorName> = self
            .parked
            .iter()
            .filter(|mirror| !self.set.holds(mirror))
            .cloned()
            .collect();
        for mirror in &released {
            self.parked.remove(mirror);
        }
        Some(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    fn set(generation: u64, all: bool, mirrors: &[&str]) -> MaintenanceSet {
        MaintenanceSet {
            generation,
            all,
            mirrors: mirrors.iter().map(|name| mirror(name)).collect(),
        }
    }

    #[test]
    fn parked_runs_start_when_their_maintenance_ends_and_old_sets_are_ignored() {
        let mut maintenance = Maintenance::default();
        assert!(!maintenance.holds(&mirror("debian")));
        assert_eq!(maintenance.update(set(10, true, &[])), Some(vec![]));
        assert!(maintenance.whole() && maintenance.holds(&mirror("pypi")));
        maintenance.park(mirror("debian"));
        maintenance.park(mirror("pypi"));
        // Narrowed to one mirror: the other's parked run goes.
        assert_eq!(
            maintenance.update(set(11, false, &["debian"])),
            Some(vec![mirror("pypi")])
        );
        // A late copy of the first set changes nothing.
        assert_eq!(maintenance.update(set(10, true, &[])), None);
        assert!(!maintenance.whole());
        assert!(maintenance.holds(&mirror("debian")));
        assert_eq!(
            maintenance.update(set(12, false, &[])),
            Some(vec![mirror("debian")])
        );
        assert_eq!(maintenance.update(set(13, false, &[])), Some(vec![]));
        // A run started by the operator is no longer parked.
        maintenance.update(set(14, false, &["pypi"]));
        maintenance.park(mirror("pypi"));
        maintenance.unpark(&mirror("pypi"));
        assert_eq!(maintenance.update(set(15, false, &[])), Some(vec![]));
    }
}
