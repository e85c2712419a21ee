//! Incidents: what is wrong, opened once when a rule starts to hold and resolved once when
//! it stops, and the notifications that go out for each.
//!
//! Pure: [`Book::reconcile`] takes what the rules find now and returns what changed. While
//! its mirror or worker is in maintenance, an incident neither opens nor resolves.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tunasync_shared::names::{MirrorName, WorkerId};

/// Which rule an incident is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Runs in a row that ended failed.
    Failures,
    /// No successful sync for too long.
    Stale,
    /// No heartbeat from a worker.
    WorkerOffline,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Failures => "failures",
            Rule::Stale => "stale",
            Rule::WorkerOffline => "worker_offline",
        }
    }
}

/// What an incident is about: a rule, and a job (a mirror on a worker or pool) or a worker.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct IncidentKey {
    pub rule: Rule,
    pub worker: WorkerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorName>,
}

impl IncidentKey {
    pub fn job(rule: Rule, mirror: &MirrorName, worker: &WorkerId) -> IncidentKey {
        IncidentKey {
            rule,
            worker: worker.clone(),
            mirror: Some(mirror.clone()),
        }
    }

    pub fn worker(rule: Rule, worker: &WorkerId) -> IncidentKey {
        IncidentKey {
            rule,
            worker: worker.clone(),
            mirror: None,
        }
    }
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    /// Unique across restarts: receivers may deduplicate by it.
    pub id: u64,
    #[serde(flatten)]
    pub key: IncidentKey,
    /// What the rule found when the incident opened.
    pub summary: String,
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
}

/// Whether a notification opens or closes its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Firing,
    Resolved,
}

/// One notification, to go to every sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub change: Change,
    pub incident: Incident,
    /// When it resolved (for `Resolved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The open incidents, and the next incident id.
#[derive(Debug, Default)]
pub struct Book {
    open: BTreeMap<IncidentKey, Incident>,
    next_id: u64,
}

/// What one reconciliation changed.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub opened: Vec<Incident>,
    pub resolved: Vec<Incident>,
    pub notifications: Vec<Notification>,
}

impl Book {
    /// The book as stored: `next_id` is the first id not handed out yet.
    pub fn new(open: Vec<Incident>, next_id: u64) -> Book {
        let next_id = open
            .iter()
            .map(|incident| incident.id + 1)
            .max()
            .unwrap_or(1)
            .max(next_id)
            .max(1);
        Book {
            open: open
                .into_iter()
                .map(|incident| (incident.key.clone(), incident))
                .collect(),
            next_id,
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The open incidents, oldest first.
    pub fn open(&self) -> Vec<Incident> {
        let mut open: Vec<Incident> = self.open.values().cloned().collect();
        open.sort_by_key(|incident| incident.id);
        open
    }

    /// Opens an incident for each rule that holds now and has none (the value: its
    /// summary), and resolves each open one whose rule no longer holds. Keys for which
    /// `muted` is true are left as they are.
    pub fn reconcile(
        &mut self,
        holding: &BTreeMap<IncidentKey, String>,
        muted: impl Fn(&IncidentKey) -> bool,
        now: DateTime<Utc>,
    ) -> Reconciled {
        let mut reconciled = Reconciled::default();
        let ended: Vec<IncidentKey> = self
            .open
            .keys()
            .filter(|key| !holding.contains_key(*key) && !muted(key))
            .cloned()
            .collect();
        for key in ended {
            if let Some(incident) = self.open.remove(&key) {
                reconciled.notifications.push(Notification {
                    change: Change::Resolved,
                    incident: incident.clone(),
                    resolved_at: Some(now),
                });
                reconciled.resolved.push(incident);
            }
        }
        for (key, summary) in holding {
            if self.open.contains_key(key) || muted(key) {
                continue;
            }
            let incident = Incident {
                id: self.next_id,
                key: key.clone(),
                summary: summary.clone(),
                since: now,
            };
            self.next_id += 1;
            self.open.insert(key.clone(), incident.clone());
            reconciled.notifications.push(Notification {
                change: Change::Firing,
                incident: incident.clone(),
                resolved_at: None,
            });
            reconciled.opened.push(incident);
        }
        reconciled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rule: Rule, mirror: &str) -> IncidentKey {
        IncidentKey::job(
            rule,
            &MirrorName::new(mirror).unwrap(),
            &WorkerId::new("w1").unwrap(),
        )
    }

    fn holding<'a>(
        keys: impl IntoIterator<Item = &'a IncidentKey>,
    ) -> BTreeMap<IncidentKey, String> {
        keys.into_iter()
            .map(|key| (key.clone(), "wrong".to_owned()))
            .collect()
    }

    #[test]
    fn one_firing_and_one_resolution_per_incident() {
        let mut book = Book::new(Vec::new(), 0);
        let now = Utc::now();
        let failing = key(Rule::Failures, "debian");
        let first = book.reconcile(&holding([&failing]), |_| false, now);
        assert_eq!(first.notifications.len(), 1);
        assert_eq!(first.notifications[0].change, Change::Firing);
        assert_eq!(first.opened[0].id, 1);
        for _ in 0..3 {
            let again = book.reconcile(&holding([&failing]), |_| false, now);
            assert!(again.notifications.is_empty(), "still the same incident");
        }
        let over = book.reconcile(&BTreeMap::new(), |_| false, now);
        assert_eq!(over.notifications.len(), 1);
        assert_eq!(over.notifications[0].change, Change::Resolved);
        assert_eq!(over.notifications[0].incident.id, 1);
        assert!(book.open().is_empty());
        let next = book.reconcile(&holding([&failing]), |_| false, now);
        assert_eq!(next.opened[0].id, 2, "a new incident, a new id");
    }

    #[test]
    fn maintenance_neither_opens_nor_resolves() {
        let mut book = Book::new(Vec::new(), 0);
        let now = Utc::now();
        let stale = key(Rule::Stale, "debian");
        let failing = key(Rule::Failures, "ubuntu");
        book.reconcile(&holding([&failing]), |_| false, now);
        let muted = book.reconcile(&holding([&stale]), |_| true, now);
        assert!(muted.notifications.is_empty());
        assert_eq!(book.open().len(), 1, "the open one stays open");
        let after = book.reconcile(&holding([&stale]), |_| false, now);
        assert_eq!(after.opened.len(), 1);
        assert_eq!(after.resolved.len(), 1);
    }

    #[test]
    fn ids_continue_after_what_was_stored() {
        let now = Utc::now();
        let stored = Incident {
            id: 7,
            key: key(Rule::Stale, "debian"),
            summary: String::new(),
            since: now,
        };
        assert_eq!(Book::new(vec![stored.clone()], 3).next_id(), 8);
        assert_eq!(Book::new(vec![stored], 12).next_id(), 12);
        assert_eq!(Book::new(Vec::new(), 0).next_id(), 1);
    }
}
