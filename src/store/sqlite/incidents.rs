//! [`IncidentStore`] on SQLite (the SQL is in `store::incidents`).

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::{Incident, IncidentSource, IncidentStore, NewIncident, StoreError};

impl IncidentStore for SqliteStore {
    fn set_incident(&self, incident: &NewIncident) -> Result<i64, StoreError> {
        self.incident_set(incident)
    }

    fn resolve_incident(
        &self,
        source: IncidentSource,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.incident_resolve(source, key, at)
    }

    fn active_incidents(&self, now: Timestamp) -> Result<Vec<Incident>, StoreError> {
        self.incidents_active(now)
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.incidents_all()
    }
}
