//! [`PgStore::claim_outbox`]: several nodes deliver from one outbox, each event to one node at
//! a time, in per-call order, and a dead node's events go to another once its lease is over.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use super::test_cluster::database;
use super::*;
use crate::store::test_support::{event, t};
use crate::store::*;

fn ids(rows: &[OutboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

#[test]
fn a_leased_event_is_left_to_its_holder_until_the_lease_ends() {
    let Some(url) = database() else { return };
    let a = PgStore::connect(&url).expect("node a");
    let b = PgStore::connect(&url).expect("node b");
    let c1_start = a
        .enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
        .expect("e1");
    let c1_end = a
        .enqueue(&event("call_ended", Some("c1"), "2026-11-28T03:00:01Z"))
        .expect("e2");
    let other = a
        .enqueue(&event("custom", None, "2026-11-28T03:00:02Z"))
        .expect("e3");
    let now = t("2026-11-28T03:01:00Z");
    let lease = t("2026-11-28T03:02:00Z");

    let got = a.claim_outbox("a", now, lease, 1).expect("claim a");
    assert_eq!(ids(&got), [c1_start], "limit 1, oldest first");
    assert_eq!(got[0].lease_until, Some(lease), "the claim says until when");
    // Another node reading the due rows learns when a's lease ends (it looks again then).
    let seen = b.pending_outbox(now, 10).expect("pending");
    let held = seen
        .iter()
        .find(|r| r.id == c1_start)
        .expect("c1_start is due");
    assert_eq!(held.lease_until, Some(lease));
    // Node b: c1_start is a's, and c1_end waits behind it whoever holds it.
    let got = b.claim_outbox("b", now, lease, 10).expect("claim b");
    assert_eq!(ids(&got), [other]);
    assert_eq!(
        got[0].event.payload,
        serde_json::json!({"event": "custom", "call_id": null})
    );
    assert_eq!(
        ids(&b.claim_outbox("b", now, lease, 10).expect("again")),
        [other],
        "a holder may claim its own rows again"
    );
    assert!(
        a.claim_outbox("a", now, lease, 10)
            .expect("a again")
            .iter()
            .all(|r| r.id != other),
        "b's row is not a's"
    );
    // Still a's one millisecond before the lease ends; b's from then on (a is taken as dead).
    let before_end = t("2026-11-28T03:01:59.999Z");
    assert!(
        b.claim_outbox("b", before_end, lease, 10)
            .expect("b")
            .iter()
            .all(|r| r.id != c1_start)
    );
    let taken = b
        .claim_outbox("b", lease, t("2026-11-28T03:03:00Z"), 10)
        .expect("takeover");
    assert_eq!(ids(&taken), [c1_start, other]);
    assert!(
        a.claim_outbox("a", lease, t("2026-11-28T03:03:00Z"), 10)
            .expect("a after takeover")
            .is_empty(),
        "the new holder keeps it"
    );
    // Delivered: c1's next event is due, to whoever claims first.
    b.mark_delivered(c1_start, lease).expect("delivered");
    b.mark_delivered(other, lease).expect("delivered");
    assert_eq!(
        ids(&a
            .claim_outbox("a", lease, t("2026-11-28T03:03:00Z"), 10)
            .expect("a")),
        [c1_end]
    );
}

#[test]
fn a_failed_attempt_ends_the_lease_and_the_retry_goes_to_any_node() {
    let Some(url) = database() else { return };
    let a = PgStore::connect(&url).expect("node a");
    let b = PgStore::connect(&url).expect("node b");
    let id = a
        .enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
        .expect("e1");
    let now = t("2026-11-28T03:01:00Z");
    let long_lease = t("2026-11-28T04:00:00Z");
    assert_eq!(
        ids(&a.claim_outbox("a", now, long_lease, 10).expect("a")),
        [id]
    );
    a.mark_attempt_failed(id, t("2026-11-28T03:02:00Z"), "503")
        .expect("failed");
    assert!(
        b.claim_outbox("b", now, long_lease, 10)
            .expect("b")
            .is_empty(),
        "not due before its retry time"
    );
    let retry = b
        .claim_outbox("b", t("2026-11-28T03:02:00Z"), long_lease, 10)
        .expect("b retry");
    assert_eq!(ids(&retry), [id]);
    assert_eq!(
        (retry[0].attempts, retry[0].last_error.as_deref()),
        (1, Some("503"))
    );
    // Postponing ends a lease too.
    b.postpone_outbox(id, t("2026-11-28T03:03:00Z"))
        .expect("postpone");
    assert_eq!(
        ids(&a
            .claim_outbox("a", t("2026-11-28T03:03:00Z"), long_lease, 10)
            .expect("a")),
        [id]
    );
}

#[test]
fn nodes_claiming_at_once_never_share_an_event_and_keep_per_call_order() {
    let Some(url) = database() else { return };
    let nodes: Vec<Arc<PgStore>> = (0..3)
        .map(|_| Arc::new(PgStore::connect(&url).expect("node")))
        .collect();
    let now = t("2026-11-28T03:01:00Z");
    let lease = t("2026-11-28T03:05:00Z");
    for round in 0..20 {
        // Ten calls with two events each, and ten events of no call.
        let mut firsts = BTreeSet::new();
        for call in 0..10 {
            let call_id = format!("r{round}c{call}");
            firsts.insert(
                nodes[0]
                    .enqueue(&event(
                        "call_started",
                        Some(&call_id),
                        "2026-11-28T03:00:00Z",
                    ))
                    .expect("first"),
            );
            nodes[0]
                .enqueue(&event("call_ended", Some(&call_id), "2026-11-28T03:00:00Z"))
                .expect("second");
            firsts.insert(
                nodes[0]
                    .enqueue(&event("custom", None, "2026-11-28T03:00:00Z"))
                    .expect("no call"),
            );
        }
        let barrier = Arc::new(Barrier::new(nodes.len()));
        let claims: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let (node, barrier) = (node.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    node.claim_outbox(&format!("node{n}"), now, lease, 8)
                        .expect("claim")
                })
            })
            .collect();
        let mut seen = BTreeSet::new();
        for claim in claims {
            for row in claim.join().expect("node thread") {
                assert!(
                    seen.insert(row.id),
                    "round {round}: event {} handed out twice",
                    row.id
                );
                assert!(
                    firsts.contains(&row.id),
                    "round {round}: event {} ({}) overtook its call's first",
                    row.id,
                    row.event.kind.as_str()
                );
            }
        }
        assert!(!seen.is_empty(), "round {round}: something was claimed");
        // Deliver everything this round queued before the next round.
        for node in &nodes {
            let mut rows = node.pending_outbox(lease, 1000).expect("pending");
            while !rows.is_empty() {
                for row in &rows {
                    node.mark_delivered(row.id, now).expect("delivered");
                }
                rows = node.pending_outbox(lease, 1000).expect("pending");
            }
        }
    }
}
