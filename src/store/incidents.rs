//! Incidents (outage announcements): set by Alertmanager or `ivr incident set`, active until
//! resolved or until their `ends_at` passes. The SQL behind the [`super::IncidentStore`]
//! methods, kept out of `sqlite.rs`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};

use super::schema::{Fail, bad_value, from_ms};
use super::{SqliteStore, StoreError};

/// Who set an incident; with its key it names the incident (`UNIQUE (source, key)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentSource {
    Alertmanager,
    Cli,
}

impl IncidentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentSource::Alertmanager => "alertmanager",
            IncidentSource::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentSource> {
        match s {
            "alertmanager" => Some(IncidentSource::Alertmanager),
            "cli" => Some(IncidentSource::Cli),
            _ => None,
        }
    }
}

/// An incident to set or refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct NewIncident {
    pub source: IncidentSource,
    /// The Alertmanager fingerprint, or the CLI name.
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    /// When it is set (kept on a refresh of an incident still active).
    pub started_at: Timestamp,
    /// When it expires unless refreshed or resolved first.
    pub ends_at: Timestamp,
}

/// One row of `incidents`.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub source: IncidentSource,
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub started_at: Timestamp,
    pub ends_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

impl Incident {
    /// Set, not resolved, not expired at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.resolved_at.is_none() && self.ends_at > now
    }
}

const INCIDENT_COLUMNS_SQL: &str =
    "id, source, key, labels, summary, started_at, ends_at, resolved_at";

fn incident_from_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let source: String = r.get(1)?;
    let labels: String = r.get(3)?;
    Ok(Incident {
        id: r.get(0)?,
        source: IncidentSource::parse(&source)
            .ok_or_else(|| bad_value(1, format!("incident source {source:?}")))?,
        key: r.get(2)?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| bad_value(3, format!("labels are not a JSON object of strings: {e}")))?,
        summary: r.get(4)?,
        started_at: from_ms(r.get(5)?, 5)?,
        ends_at: from_ms(r.get(6)?, 6)?,
        resolved_at: r
            .get::<_, Option<i64>>(7)?
            .map(|v| from_ms(v, 7))
            .transpose()?,
    })
}

/// Insert or refresh `inc`; returns its id. A refresh of an active incident keeps its
/// `started_at` (Alertmanager re-sends a firing alert every `repeat_interval`); one that was
/// resolved or had expired starts again.
pub(super) fn set(tx: &Connection, inc: &NewIncident) -> Result<i64, Fail> {
    let labels = serde_json::to_string(&inc.labels).unwrap_or_else(|_| "{}".into());
    let started = inc.started_at.as_millisecond();
    let existing: Option<(i64, Option<i64>, i64)> = tx
        .query_row(
            "SELECT id, resolved_at, ends_at FROM incidents WHERE source = ?1 AND key = ?2",
            rusqlite::params![inc.source.as_str(), inc.key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match existing {
        Some((id, resolved, ends)) => {
            let still_active = resolved.is_none() && ends > started;
            tx.execute(
                "UPDATE incidents SET labels = ?2, summary = ?3, ends_at = ?4, resolved_at = NULL, \
                 started_at = CASE WHEN ?5 THEN started_at ELSE ?6 END WHERE id = ?1",
                rusqlite::params![
                    id,
                    labels,
                    inc.summary,
                    inc.ends_at.as_millisecond(),
                    still_active,
                    started
                ],
            )?;
            Ok(id)
        }
        None => {
            tx.execute(
                "INSERT INTO incidents (source, key, labels, summary, started_at, ends_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    inc.source.as_str(),
                    inc.key,
                    labels,
                    inc.summary,
                    started,
                    inc.ends_at.as_millisecond()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        }
    }
}

/// Mark the incident resolved at `at`; `false` when there is none that is unresolved.
pub(super) fn resolve(
    tx: &Connection,
    source: IncidentSource,
    key: &str,
    at: Timestamp,
) -> Result<bool, Fail> {
    let n = tx.execute(
        "UPDATE incidents SET resolved_at = ?3 \
         WHERE source = ?1 AND key = ?2 AND resolved_at IS NULL",
        rusqlite::params![source.as_str(), key, at.as_millisecond()],
    )?;
    Ok(n == 1)
}

/// Incidents active at `now`, oldest first (the first one matching a prompt is announced).
pub(super) fn active(c: &Connection, now: Timestamp) -> Result<Vec<Incident>, Fail> {
    let mut stmt = c.prepare(&format!(
        "SELECT {INCIDENT_COLUMNS_SQL} FROM incidents \
         WHERE resolved_at IS NULL AND ends_at > ?1 ORDER BY started_at, id"
    ))?;
    let rows = stmt.query_map([now.as_millisecond()], incident_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Every incident, newest first.
pub(super) fn all(c: &Connection) -> Result<Vec<Incident>, Fail> {
    let mut stmt = c.prepare(&format!(
        "SELECT {INCIDENT_COLUMNS_SQL} FROM incidents ORDER BY started_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([], incident_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl SqliteStore {
    pub(super) fn incident_set(&self, inc: &NewIncident) -> Result<i64, StoreError> {
        let inc = inc.clone();
        self.write("setting an incident", move |tx| set(tx, &inc))
    }

    pub(super) fn incident_resolve(
        &self,
        source: IncidentSource,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write("resolving an incident", move |tx| {
            resolve(tx, source, &key, at)
        })
    }

    pub(super) fn incidents_active(&self, now: Timestamp) -> Result<Vec<Incident>, StoreError> {
        self.read("reading active incidents", |c| active(c, now))
    }

    pub(super) fn incidents_all(&self) -> Result<Vec<Incident>, StoreError> {
        self.read("reading incidents", all)
    }
}
