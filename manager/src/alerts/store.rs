//! The alerts' part of the store: open incidents and the outbox, in their own tables of
//! the manager's redb file, written only by the alert engine.

use redb::{ReadableTable, TableDefinition};

use super::courier::OutboxItem;
use super::incidents::Incident;
use crate::records::{decode, encode};
use crate::store::{META, Store, StoreError, redb_error};

const INCIDENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alert_incidents");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("alert_outbox");
const NEXT_INCIDENT: &str = "alert_next_incident";
const NEXT_SEQ: &str = "alert_next_seq";

/// What the store holds of the alerts.
#[derive(Debug, Default)]
pub struct Stored {
    pub incidents: Vec<Incident>,
    pub next_incident: u64,
    pub outbox: Vec<OutboxItem>,
    pub next_seq: u64,
}

/// Every record of `table`, in key order; `what` names one in errors.
fn read_all<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut records = Vec::new();
    for entry in table.iter().map_err(redb_error)? {
        let (key, value) = entry.map_err(redb_error)?;
        let record = decode(value.value()).map_err(|source| StoreError::Record {
            key: format!("{what} {}", key.value()),
            source,
        })?;
        records.push(record);
    }
    Ok(records)
}

/// One write of the alert engine.
#[derive(Debug, Default)]
pub struct AlertChanges {
    pub opened: Vec<Incident>,
    pub resolved: Vec<u64>,
    pub queued: Vec<OutboxItem>,
    pub delivered: Vec<u64>,
    pub next_incident: u64,
    pub next_seq: u64,
}

impl AlertChanges {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty()
            && self.resolved.is_empty()
            && self.queued.is_empty()
            && self.delivered.is_empty()
    }
}

impl Store {
    /// Reads the open incidents and the outbox (creating their tables on first use).
    pub fn load_alerts(&self) -> Result<Stored, StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_write().map_err(redb_error)?;
        let mut stored = Stored::default();
        {
            let meta = tx.open_table(META).map_err(redb_error)?;
            let counter = |key: &str| -> Result<u64, StoreError> {
                Ok(meta
                    .get(key)
                    .map_err(redb_error)?
                    .map_or(0, |value| value.value()))
            };
            stored.next_incident = counter(NEXT_INCIDENT)?;
            stored.next_seq = counter(NEXT_SEQ)?;
            stored.incidents = read_all(
                &tx.open_table(INCIDENTS).map_err(redb_error)?,
                "alert incident",
            )?;
            stored.outbox = read_all(
                &tx.open_table(OUTBOX).map_err(redb_error)?,
                "alert outbox item",
            )?;
        }
        tx.commit().map_err(redb_error)?;
        Ok(stored)
    }

    /// Writes what the alert engine changed, in one transaction.
    pub fn commit_alerts(&self, changes: &AlertChanges) -> Result<(), StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_write().map_err(redb_error)?;
        {
            let mut incidents = tx.open_table(INCIDENTS).map_err(redb_error)?;
            for incident in &changes.opened {
                incidents
                    .insert(incident.id, encode(incident).as_slice())
                    .map_err(redb_error)?;
            }
            for id in &changes.resolved {
                incidents.remove(id).map_err(redb_error)?;
            }
            let mut outbox = tx.open_table(OUTBOX).map_err(redb_error)?;
            for item in &changes.queued {
                outbox
                    .insert(item.seq, encode(item).as_slice())
                    .map_err(redb_error)?;
            }
            for seq in &changes.delivered {
                outbox.remove(seq).map_err(redb_error)?;
            }
            let mut meta = tx.open_table(META).map_err(redb_error)?;
            meta.insert(NEXT_INCIDENT, changes.next_incident)
                .map_err(redb_error)?;
            meta.insert(NEXT_SEQ, changes.next_seq)
                .map_err(redb_error)?;
        }
        tx.commit().map_err(redb_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::incidents::{Change, IncidentKey, Notification, Rule};
    use tunasync_shared::names::WorkerId;

    #[test]
    fn incidents_and_outbox_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let incident = Incident {
            id: 3,
            key: IncidentKey::worker(Rule::WorkerOffline, &WorkerId::new("w1").unwrap()),
            summary: "worker w1 is offline".into(),
            since: chrono::Utc::now(),
        };
        let item = |seq: u64| OutboxItem {
            seq,
            sink: "ops".into(),
            notification: Notification {
                change: Change::Firing,
                incident: incident.clone(),
                resolved_at: None,
            },
        };
        {
            let (store, _) = Store::open(&path, 10).unwrap();
            assert!(store.load_alerts().unwrap().incidents.is_empty());
            store
                .commit_alerts(&AlertChanges {
                    opened: vec![incident.clone()],
                    queued: vec![item(1), item(2)],
                    next_incident: 4,
                    next_seq: 3,
                    ..AlertChanges::default()
                })
                .unwrap();
            store
                .commit_alerts(&AlertChanges {
                    delivered: vec![1],
                    next_incident: 4,
                    next_seq: 3,
                    ..AlertChanges::default()
                })
                .unwrap();
        }
        let (store, _) = Store::open(&path, 10).unwrap();
        let stored = store.load_alerts().unwrap();
        assert_eq!(stored.incidents.len(), 1);
        assert_eq!(stored.incidents[0], incident);
        assert_eq!(stored.outbox, [item(2)]);
        assert_eq!((stored.next_incident, stored.next_seq), (4, 3));
    }
}
