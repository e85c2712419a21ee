//! When each job runs next. Keyed by (time, name), so two jobs due at the same instant are
//! both kept (tunasync's time-keyed queue lost one of them) and all due jobs start together.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tunasync_shared::names::MirrorName;

#[derive(Debug, Default)]
pub struct Schedule {
    queue: BTreeSet<(DateTime<Utc>, MirrorName)>,
    by_name: HashMap<MirrorName, DateTime<Utc>>,
}

impl Schedule {
    /// Schedules `name` at `at`, replacing an earlier entry of the same job.
    pub fn set(&mut self, name: MirrorName, at: DateTime<Utc>) {
        if let Some(previous) = self.by_name.insert(name.clone(), at) {
            self.queue.remove(&(previous, name.clone()));
        }
        self.queue.insert((at, name));
    }

    pub fn remove(&mut self, name: &MirrorName) {
        if let Some(at) = self.by_name.remove(name) {
            self.queue.remove(&(at, name.clone()));
        }
    }

    pub fn get(&self, name: &MirrorName) -> Option<DateTime<Utc>> {
        self.by_name.get(name).copied()
    }

    /// The earliest time anything is due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Takes every job due at or before `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<MirrorName> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if *at > now {
                break;
            }
            if let Some((_, name)) = self.queue.pop_first() {
                self.by_name.remove(&name);
                due.push(name);
            }
        }
        due
    }

    /// Every scheduled job and its time, soonest first.
    pub fn entries(&self) -> impl Iterator<Item = (&MirrorName, DateTime<Utc>)> {
        self.queue.iter().map(|(at, name)| (name, *at))
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> MirrorName {
        MirrorName::new(text).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn jobs_due_at_the_same_instant_all_start() {
        let mut schedule = Schedule::default();
        assert!(schedule.pop_due(at(0)).is_empty(), "pop on empty");
        for job in ["a", "b", "c"] {
            schedule.set(name(job), at(10));
        }
        schedule.set(name("later"), at(20));
        assert_eq!(schedule.len(), 4, "no collision on equal times");
        assert!(schedule.pop_due(at(9)).is_empty());
        assert_eq!(schedule.pop_due(at(10)), [name("a"), name("b"), name("c")]);
        assert_eq!(schedule.next_due(), Some(at(20)));
    }

    #[test]
    fn re_adding_replaces_and_remove_removes() {
        let mut schedule = Schedule::default();
        schedule.set(name("a"), at(10));
        schedule.set(name("a"), at(30));
        assert_eq!(schedule.len(), 1);
        assert_eq!(schedule.get(&name("a")), Some(at(30)));
        assert!(schedule.pop_due(at(10)).is_empty());
        schedule.remove(&name("a"));
        assert!(schedule.is_empty());
        assert_eq!(schedule.next_due(), None);
    }
}
