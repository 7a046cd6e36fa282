use std::collections::BTreeMap;

use super::super::test_support::{TempDir, raw, t};
use super::super::traits::*;
use super::*;

fn email(key: &str, started: &str, ends: &str) -> NewIncident {
    NewIncident {
        source: IncidentSource::Alertmanager,
        key: key.into(),
        labels: BTreeMap::from([("service".to_string(), "email".to_string())]),
        summary: "mail is down".into(),
        started_at: t(started),
        ends_at: t(ends),
    }
}

/// (key, started_at, ends_at, resolved_at) straight from the file.
fn rows(dir: &std::path::Path) -> Vec<(String, i64, i64, Option<i64>)> {
    let conn = raw(dir);
    let mut stmt = conn
        .prepare("SELECT key, started_at, ends_at, resolved_at FROM incidents ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn set_then_refresh_keeps_one_row_and_its_start() {
    let dir = TempDir::new("incident-set");
    let store = SqliteStore::open(dir.path()).expect("open");
    let id = store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:00:00Z",
            "2026-03-02T11:00:00Z",
        ))
        .expect("set");
    let active = store
        .active_incidents(t("2026-03-02T10:30:00Z"))
        .expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, id);
    assert_eq!(active[0].labels["service"], "email");

    // Alertmanager re-sends the firing alert: same row, later expiry, same start.
    let again = store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:50:00Z",
            "2026-03-02T12:00:00Z",
        ))
        .expect("refresh");
    assert_eq!(again, id);
    assert_eq!(
        rows(dir.path()),
        [(
            "fp1".to_string(),
            t("2026-03-02T10:00:00Z").as_millisecond(),
            t("2026-03-02T12:00:00Z").as_millisecond(),
            None
        )]
    );
    assert_eq!(
        store
            .active_incidents(t("2026-03-02T11:30:00Z"))
            .expect("active")
            .len(),
        1,
        "the refresh moved the expiry"
    );
}

#[test]
fn resolve_ends_it_and_a_new_firing_starts_again() {
    let dir = TempDir::new("incident-resolve");
    let store = SqliteStore::open(dir.path()).expect("open");
    store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:00:00Z",
            "2026-03-02T11:00:00Z",
        ))
        .expect("set");
    let at = t("2026-03-02T10:20:00Z");
    assert!(
        store
            .resolve_incident(IncidentSource::Alertmanager, "fp1", at)
            .expect("resolve")
    );
    assert!(
        !store
            .resolve_incident(IncidentSource::Alertmanager, "fp1", at)
            .expect("resolve again"),
        "already resolved"
    );
    assert!(
        !store
            .resolve_incident(IncidentSource::Cli, "fp1", at)
            .expect("other source"),
        "source and key name an incident together"
    );
    assert!(
        store
            .active_incidents(t("2026-03-02T10:30:00Z"))
            .expect("active")
            .is_empty()
    );
    assert_eq!(rows(dir.path())[0].3, Some(at.as_millisecond()));

    store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:40:00Z",
            "2026-03-02T11:40:00Z",
        ))
        .expect("fires again");
    let r = rows(dir.path());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, t("2026-03-02T10:40:00Z").as_millisecond());
    assert_eq!(r[0].3, None);
}

#[test]
fn expired_incidents_are_not_active() {
    let dir = TempDir::new("incident-expiry");
    let store = SqliteStore::open(dir.path()).expect("open");
    store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:00:00Z",
            "2026-03-02T11:00:00Z",
        ))
        .expect("set");
    let mut cli = email("mail", "2026-03-02T10:05:00Z", "2026-03-02T13:00:00Z");
    cli.source = IncidentSource::Cli;
    store.set_incident(&cli).expect("set cli");
    let keys = |at: &str| -> Vec<String> {
        store
            .active_incidents(t(at))
            .expect("active")
            .into_iter()
            .map(|i| i.key)
            .collect()
    };
    assert_eq!(keys("2026-03-02T10:59:59.999Z"), ["fp1", "mail"]);
    assert_eq!(
        keys("2026-03-02T11:00:00Z"),
        ["mail"],
        "ends_at is exclusive"
    );
    assert!(keys("2026-03-02T13:00:00Z").is_empty());
    // Expired rows stay for the record.
    assert_eq!(store.incidents().expect("all").len(), 2);
}
