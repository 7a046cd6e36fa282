//! What an operator does with incidents (`ivr incident set/clear/list`): the CLI's side of the
//! outage announcements; Alertmanager's side is `src/http/alertmanager.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::store::{Incident, IncidentSource, IncidentStore, NewIncident, StoreError};

/// Parse `--label NAME=VALUE` flags into labels; the error names the bad one.
pub fn parse_labels(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "--label {f:?}: expected NAME=VALUE, e.g. service=email"
            )),
        })
        .collect()
}

/// Set (or refresh) the CLI incident `name`, active from `now` for `lasts`; returns its id
/// and when it expires.
pub fn set(
    store: &dyn IncidentStore,
    name: &str,
    labels: BTreeMap<String, String>,
    summary: &str,
    lasts: Duration,
    now: Timestamp,
) -> Result<(i64, Timestamp), StoreError> {
    let ends_at = jiff::SignedDuration::try_from(lasts)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX);
    let id = store.set_incident(&NewIncident {
        source: IncidentSource::Cli,
        key: name.to_string(),
        labels,
        summary: summary.to_string(),
        started_at: now,
        ends_at,
    })?;
    Ok((id, ends_at))
}

/// Resolve the CLI incident `name`; `false` if there was none unresolved.
pub fn clear(store: &dyn IncidentStore, name: &str, now: Timestamp) -> Result<bool, StoreError> {
    store.resolve_incident(IncidentSource::Cli, name, now)
}

/// How an incident stands at `now`, for lists.
pub fn state(i: &Incident, now: Timestamp) -> String {
    match i.resolved_at {
        Some(at) => format!("resolved {at}"),
        None if i.ends_at <= now => format!("expired {}", i.ends_at),
        None => format!("active until {}", i.ends_at),
    }
}

/// `service=email,team=ops`.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
