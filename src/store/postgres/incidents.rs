//! Incidents (outage announcements): set, refreshed, resolved, and which are active.

use std::collections::BTreeMap;

use jiff::Timestamp;
use postgres::Row;

use super::{Fail, PgStore, from_ms, opt_from_ms};
use crate::store::{Incident, IncidentSource, NewIncident, StoreError};

const INCIDENT_COLUMNS_SQL: &str =
    "id, source, key, labels, summary, started_at, ends_at, resolved_at";

fn incident(r: &Row) -> Result<Incident, Fail> {
    let source: String = r.try_get(1)?;
    let labels: String = r.try_get(3)?;
    Ok(Incident {
        id: r.try_get(0)?,
        source: IncidentSource::parse(&source)
            .ok_or_else(|| Fail::Bad(format!("unknown incident source {source:?}")))?,
        key: r.try_get(2)?,
        labels: serde_json::from_str::<BTreeMap<String, String>>(&labels).map_err(|e| {
            Fail::Bad(format!(
                "incident labels are not a JSON object of strings: {e}"
            ))
        })?,
        summary: r.try_get(4)?,
        started_at: from_ms(r.try_get(5)?)?,
        ends_at: from_ms(r.try_get(6)?)?,
        resolved_at: opt_from_ms(r.try_get(7)?)?,
    })
}

impl crate::store::IncidentStore for PgStore {
    /// See [`crate::store::Store::set_incident`]. One statement, so two nodes told about the
    /// same alert at once end with one row: a refresh of an active incident keeps its
    /// `started_at` (Alertmanager re-sends a firing alert); one resolved or expired starts again.
    fn set_incident(&self, inc: &NewIncident) -> Result<i64, StoreError> {
        let labels = serde_json::to_string(&inc.labels).unwrap_or_else(|_| "{}".into());
        self.write("setting an incident", |tx| {
            let row = tx.query_one(
                "INSERT INTO incidents (source, key, labels, summary, started_at, ends_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (source, key) DO UPDATE SET labels = excluded.labels, \
                 summary = excluded.summary, ends_at = excluded.ends_at, resolved_at = NULL, \
                 started_at = CASE WHEN incidents.resolved_at IS NULL \
                                    AND incidents.ends_at > excluded.started_at \
                                   THEN incidents.started_at ELSE excluded.started_at END \
                 RETURNING id",
                &[
                    &inc.source.as_str(),
                    &inc.key,
                    &labels,
                    &inc.summary,
                    &inc.started_at.as_millisecond(),
                    &inc.ends_at.as_millisecond(),
                ],
            )?;
            Ok(row.try_get(0)?)
        })
    }

    /// See [`crate::store::Store::resolve_incident`].
    fn resolve_incident(
        &self,
        source: IncidentSource,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write("resolving an incident", |tx| {
            let n = tx.execute(
                "UPDATE incidents SET resolved_at = $3 \
                 WHERE source = $1 AND key = $2 AND resolved_at IS NULL",
                &[&source.as_str(), &key, &at.as_millisecond()],
            )?;
            Ok(n == 1)
        })
    }

    /// See [`crate::store::Store::active_incidents`]: oldest first (the first one matching a
    /// prompt is announced).
    fn active_incidents(&self, now: Timestamp) -> Result<Vec<Incident>, StoreError> {
        self.read("reading active incidents", |c| {
            c.query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS_SQL} FROM incidents \
                     WHERE resolved_at IS NULL AND ends_at > $1 ORDER BY started_at, id"
                ),
                &[&now.as_millisecond()],
            )?
            .iter()
            .map(incident)
            .collect()
        })
    }

    /// See [`crate::store::Store::incidents`]: newest first.
    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.read("reading incidents", |c| {
            c.query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS_SQL} FROM incidents ORDER BY started_at DESC, id DESC"
                ),
                &[],
            )?
            .iter()
            .map(incident)
            .collect()
        })
    }
}
