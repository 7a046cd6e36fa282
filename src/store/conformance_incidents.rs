//! The conformance cases of incidents (see `conformance.rs`).

use std::collections::BTreeMap;

use super::super::test_support::*;
use super::super::*;
use super::Subject;

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

pub(in crate::store) fn incident_set_then_refresh_keeps_one_row_and_its_start(s: &Subject) {
    let store = &*s.store;
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
    assert_eq!(active[0].summary, "mail is down");
    // Alertmanager re-sends the firing alert: same row, later expiry, same start.
    let again = store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:50:00Z",
            "2026-03-02T12:00:00Z",
        ))
        .expect("refresh");
    assert_eq!(again, id);
    let all = store.incidents().expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].started_at, all[0].ends_at, all[0].resolved_at),
        (t("2026-03-02T10:00:00Z"), t("2026-03-02T12:00:00Z"), None)
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

pub(in crate::store) fn incident_resolve_ends_it_and_a_new_firing_starts_again(s: &Subject) {
    let store = &*s.store;
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
            .expect("again"),
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
    assert_eq!(store.incidents().expect("all")[0].resolved_at, Some(at));
    store
        .set_incident(&email(
            "fp1",
            "2026-03-02T10:40:00Z",
            "2026-03-02T11:40:00Z",
        ))
        .expect("fires again");
    let all = store.incidents().expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].started_at, t("2026-03-02T10:40:00Z"));
    assert_eq!(all[0].resolved_at, None);
}

pub(in crate::store) fn expired_incidents_are_not_active(s: &Subject) {
    let store = &*s.store;
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
    // Expired rows stay for the record, newest first.
    let all: Vec<String> = store
        .incidents()
        .expect("all")
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(all, ["mail", "fp1"]);
}
